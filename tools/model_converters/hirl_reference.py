"""Convert a released HIRL reference checkpoint into an mmpretrain ``backbone.*`` checkpoint.

The HIRL authors' code (github.com/hirl-team/HIRL) saves ``{'model': state_dict, ...}``
with, after an optional DDP ``module.`` prefix, the backbone under ``backbone.`` (baselines)
or ``model.backbone.`` (HIRL models):

- ResNet-50 (MoCo v2, SimSiam, SwAV): torchvision's key layout (``conv1``, ``bn1``,
  ``layer1.0.downsample.0`` ...), which mmpretrain's ``ResNet`` shares key for key;
- ViT-B/16 (DINO, iBOT, MoCo v3): DINO's VisionTransformer layout (``patch_embed.proj``,
  ``blocks.N.norm1`` / ``attn.qkv`` / ``attn.proj`` / ``norm2`` / ``mlp.fc1`` / ``mlp.fc2``,
  ``norm``), renamed to mmpretrain's ``VisionTransformer`` (``patch_embed.projection``,
  ``layers.N.ln1`` / ``attn.qkv`` / ``attn.proj`` / ``ln2`` / ``ffn.layers.0.0`` /
  ``ffn.layers.1``, ``ln1``).

facebookresearch/dino's own releases (a bare ViT state dict, or ``{'teacher': ...}``) and
MoCo v3's (``module.base_encoder.``) are read too. Heads (``fc``, ``head``) and iBOT's mask
token (``masked_embed``) are dropped; any other key stops the conversion with its name.

Usage::

    python tools/model_converters/hirl_reference.py hirl_mocov2_r50_200ep.pth \\
        hirl_mocov2_r50_backbone.pth
    python tools/model_converters/hirl_reference.py hirl_dino_vitb16.pth out.pth --prefix \\
        model.backbone.

The output (``{'state_dict': {'backbone.<name>': tensor}, 'meta': {...}}``) loads exactly
into the ResNet-50 / ViT-B/16 configs of ``configs/benchmarks/`` (``init_cfg`` of type
``Pretrained``, or ``load_from``), so hirl_mm's evaluation and transfer tools run on it.
"""
import argparse
import re
import sys
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor

import hirl_mm  # noqa: F401  (allow-lists mmengine's checkpoint types)
from hirl_mm.utils.backbone_conversion import convert_backbone_checkpoint

# Where the backbone lives, tried in this order (after removing a DDP ``module.``).
PREFIXES = ('model.backbone.', 'backbone.', 'teacher.backbone.', 'base_encoder.',
            'encoder_q.', '')
DROPPED = re.compile(r'^(fc|head|masked_embed)(\.|$)')
VIT_BLOCK = {'norm1': 'ln1', 'attn.qkv': 'attn.qkv', 'attn.proj': 'attn.proj',
             'norm2': 'ln2', 'mlp.fc1': 'ffn.layers.0.0', 'mlp.fc2': 'ffn.layers.1'}
VIT_TOP = {'cls_token': 'cls_token', 'pos_embed': 'pos_embed',
           'patch_embed.proj': 'patch_embed.projection', 'norm': 'ln1'}


def model_state(content: Dict) -> Dict[str, Tensor]:
    """The model's state dict inside a reference checkpoint, without DDP's ``module.``."""
    for key in ('model', 'state_dict', 'teacher'):
        if isinstance(content.get(key), dict):
            content = content[key]
            break
    return {k[len('module.'):] if k.startswith('module.') else k: v
            for k, v in content.items() if hasattr(v, 'shape')}


def backbone_state(state: Dict[str, Tensor], prefix: Optional[str] = None
                   ) -> Tuple[Dict[str, Tensor], str]:
    """The backbone's tensors, keys without ``prefix`` (found when None).

    Raises:
        KeyError: If no ResNet / ViT backbone is found under the prefixes.
    """
    for candidate in (PREFIXES if prefix is None else (prefix,)):
        found = {k[len(candidate):]: v for k, v in state.items() if k.startswith(candidate)}
        if 'conv1.weight' in found or 'cls_token' in found:
            return found, candidate
    tried = ', '.join(repr(p) for p in (PREFIXES if prefix is None else (prefix,)))
    raise KeyError(f'no ResNet (conv1.weight) or ViT (cls_token) backbone under the '
                   f'prefixes {tried}; keys look like {sorted(state)[:4]}. Pass --prefix '
                   f'with the part before conv1.weight / cls_token.')


def _vit_key(key: str) -> Optional[str]:
    """mmpretrain's name of one DINO-layout ViT key, or None if it has none."""
    block = re.match(r'^blocks\.(\d+)\.(.+)\.(weight|bias)$', key)
    if block:
        name = VIT_BLOCK.get(block.group(2))
        return None if name is None else f'layers.{block.group(1)}.{name}.{block.group(3)}'
    stem, _, leaf = key.rpartition('.')
    if key in VIT_TOP:
        return VIT_TOP[key]
    if stem in VIT_TOP and leaf in ('weight', 'bias'):
        return f'{VIT_TOP[stem]}.{leaf}'
    return None


def convert_reference_state(content: Dict, prefix: Optional[str] = None
                            ) -> Dict[str, Tensor]:
    """A reference checkpoint's backbone as mmpretrain ``backbone.*`` keys.

    Args:
        content (dict): The loaded checkpoint (``{'model': ...}``, ``{'teacher': ...}`` or
            a bare state dict).
        prefix (str, optional): Where the backbone lives (e.g. ``'model.backbone.'``);
            found automatically when None.

    Returns:
        dict[str, Tensor]: ``backbone.<mmpretrain name>`` -> tensor.

    Raises:
        KeyError: No backbone found.
        ValueError: A ViT key with no mmpretrain counterpart.
    """
    found, _ = backbone_state(model_state(content), prefix)
    found = {k: v for k, v in found.items() if not DROPPED.match(k)}
    if 'conv1.weight' in found:  # torchvision's ResNet layout is mmpretrain's
        return {f'backbone.{k}': v for k, v in found.items()}
    converted, unknown = {}, []
    for key, value in found.items():
        name = _vit_key(key)
        if name is None:
            unknown.append(key)
        else:
            converted[f'backbone.{name}'] = value
    if unknown:
        raise ValueError(f'ViT keys without an mmpretrain VisionTransformer counterpart: '
                         f'{unknown[:5]} ({len(unknown)} in all); only DINO-layout ViTs '
                         f'without layer scale are converted.')
    return converted


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('checkpoint', help='released HIRL (or DINO / MoCo v3) checkpoint')
    parser.add_argument('output', help='file to write (.pth)')
    parser.add_argument('--prefix', help='key prefix of the backbone after "module." '
                        f'(default: the first of {PREFIXES} that holds one)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    # The reference saves its argparse options next to the weights; a Namespace only holds
    # attributes, and anything else the pickle names is still refused by weights-only loading.
    with torch.serialization.safe_globals([argparse.Namespace]):
        state = convert_backbone_checkpoint(
            args.checkpoint, args.output, lambda c: convert_reference_state(c, args.prefix),
            source_layout='hirl-reference')
    if state is None:
        return 2
    arch = 'ViT' if 'backbone.cls_token' in state else 'ResNet'
    print(f'wrote the {arch} backbone ({len(state)} tensors) of {args.checkpoint} to '
          f'{args.output}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
