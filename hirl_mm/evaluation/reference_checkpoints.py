"""The HIRL authors' released checkpoints as mmpretrain backbones: keys and config.

The authors' code (github.com/hirl-team/HIRL) saves ``{'model': state_dict, ...}`` with,
after an optional DDP ``module.``, the backbone under ``backbone.`` (baselines) or
``model.backbone.`` (HIRL models). Its backbones come in three layouts:

- ResNet-50 (MoCo v2, SimSiam, SwAV): torchvision's keys, which mmpretrain's ``ResNet``
  shares; ``fc.*`` (the projector) is dropped.
- ViT (DINO, iBOT, MoCo v3): ``hirl.backbones.vision_transformer`` (DINO's layout:
  ``patch_embed.proj``, ``blocks.N.norm1`` / ``attn.qkv`` / ``attn.proj`` / ``norm2`` /
  ``mlp.fc1`` / ``mlp.fc2``, ``norm``, or ``fc_norm`` when mean-pooled), renamed to
  mmpretrain's ``VisionTransformer`` (``patch_embed.projection``, ``layers.N.ln1`` /
  ``attn.qkv`` / ``attn.proj`` / ``ln2`` / ``ffn.layers.0.0`` / ``ffn.layers.1``, ``ln1``,
  ``ln2``).
- BEiT ViT (BEiT, HIRL-BEiT): the same module built with layer scale
  (``blocks.N.gamma_1`` / ``gamma_2``), one relative position bias shared by all blocks
  (``rel_pos_bias.*``), no ``pos_embed``; it becomes mmpretrain's ``BEiTViT`` with
  ``use_shared_rel_pos_bias=True``. Its full ``attn.qkv.bias`` is split into ``q_bias`` /
  ``v_bias``: the k part adds, for each query, the same constant to every key's logit,
  which softmax cancels, so dropping it leaves the outputs unchanged.

Heads (``head``, ``fc``), the mask token (``masked_embed``) and BEiT's tokenizer
(``dvae_model``) are dropped; any other key stops the conversion with its name.
"""
import math
import re
from typing import Any, Dict, List, Optional, Tuple

from mmpretrain.models.backbones.resnet import ResNet
from torch import Tensor

__all__ = ['PREFIXES', 'model_state', 'backbone_state', 'convert_reference_state',
           'config_text']

# Where the backbone lives, tried in this order (after removing a DDP ``module.``): HIRL
# models, baselines, facebookresearch/dino's {'teacher': ...}, BEiT's own name for its ViT,
# MoCo v3's releases, a bare backbone.
PREFIXES = ('model.backbone.', 'backbone.', 'teacher.backbone.', 'model.vit_model.',
            'vit_model.', 'base_encoder.', 'encoder_q.', '')
DROPPED = re.compile(r'^(fc|head|masked_embed|dvae_model)(\.|$)')
_BN = r'(weight|bias|running_mean|running_var|num_batches_tracked)'
RESNET_KEY = re.compile(rf'^(conv1\.weight|bn1\.{_BN}|layer[1-4]\.\d+\.(conv[1-3]\.weight|'
                        rf'bn[1-3]\.{_BN}|downsample\.0\.weight|downsample\.1\.{_BN}))$')
VIT_BLOCK = {'norm1': 'ln1', 'attn.qkv': 'attn.qkv', 'attn.proj': 'attn.proj',
             'norm2': 'ln2', 'mlp.fc1': 'ffn.layers.0.0', 'mlp.fc2': 'ffn.layers.1'}
VIT_TOP = {'patch_embed.proj': 'patch_embed.projection', 'norm': 'ln1', 'fc_norm': 'ln2'}
# Taken over under the same name (mmpretrain's BEiTViT calls them alike).
SAME_NAME = re.compile(r'^(cls_token|pos_embed|rel_pos_bias\.relative_position_(bias_table|'
                       r'index)|blocks\.\d+\.gamma_[12])$')
VIT_B = dict(embed_dims=768, num_layers=12, num_heads=12, feedforward_channels=3072)


def model_state(content: Dict[str, Any]) -> Dict[str, Tensor]:
    """The model's tensors inside a reference checkpoint, without DDP's ``module.``.

    Args:
        content (dict): The loaded file: ``{'model': ...}``, ``{'state_dict': ...}``,
            ``{'teacher': ...}`` or a bare state dict.

    Returns:
        dict[str, Tensor]: Every tensor of the model's state dict.
    """
    for key in ('model', 'state_dict', 'teacher'):
        if isinstance(content.get(key), dict):
            content = content[key]
            break
    return {k[len('module.'):] if k.startswith('module.') else k: v
            for k, v in content.items() if hasattr(v, 'shape')}


def backbone_state(state: Dict[str, Tensor], prefix: Optional[str] = None
                   ) -> Tuple[Dict[str, Tensor], str]:
    """The backbone's tensors, their keys without ``prefix`` (found when None).

    Args:
        state (dict[str, Tensor]): The model's state dict (see :func:`model_state`).
        prefix (str, optional): Where the backbone lives; only this one is tried if given.

    Returns:
        tuple[dict[str, Tensor], str]: The backbone's tensors and the prefix used.

    Raises:
        KeyError: If no ResNet / ViT backbone is found under the prefixes.
    """
    candidates = PREFIXES if prefix is None else (prefix,)
    for candidate in candidates:
        found = {k[len(candidate):]: v for k, v in state.items() if k.startswith(candidate)}
        if 'conv1.weight' in found or 'cls_token' in found:
            return found, candidate
    tried = ', '.join(repr(p) for p in candidates)
    raise KeyError(f'no ResNet (conv1.weight) or ViT (cls_token) backbone under the '
                   f'prefixes {tried}; keys look like {sorted(state)[:4]}. Pass --prefix '
                   f'with the part before conv1.weight / cls_token.')


def _refuse(unknown: List[str], layout: str) -> None:
    if unknown:
        raise ValueError(
            f'keys that are not part of a {layout} backbone: {sorted(unknown)[:5]} '
            f'({len(unknown)} in all). If the file holds more than the backbone, pass '
            f'--prefix with the part before conv1.weight / cls_token; otherwise this '
            f'layout is not one of the HIRL authors\' and is not converted.')


def _resnet(found: Dict[str, Tensor]) -> Tuple[Dict[str, Tensor], Dict[str, Any]]:
    """torchvision ResNet keys as they are, with the mmpretrain ``ResNet`` they fit."""
    _refuse([k for k in found if not RESNET_KEY.match(k)], 'torchvision ResNet')
    blocks = tuple(len({k.split('.')[1] for k in found if k.startswith(f'layer{i}.')})
                   for i in range(1, 5))
    bottleneck = 'layer1.0.conv3.weight' in found
    depths = [depth for depth, (block, stages) in ResNet.arch_settings.items()
              if stages == blocks and (block.__name__ == 'Bottleneck') == bottleneck]
    if not depths:
        raise ValueError(f'a ResNet with {blocks} {"bottleneck" if bottleneck else "basic"} '
                         f'blocks per stage is none of mmpretrain\'s ResNet depths '
                         f'{sorted(ResNet.arch_settings)}.')
    return found, dict(type='ResNet', depth=depths[0])


def _vit_name(key: str, beit: bool) -> List[str]:
    """mmpretrain's name(s) of one authors' ViT key; empty if it has none."""
    if SAME_NAME.match(key):
        return [key.replace('blocks.', 'layers.', 1)]
    block = re.match(r'^blocks\.(\d+)\.(.+)\.(weight|bias)$', key)
    if block:
        index, module, leaf = block.groups()
        if module not in VIT_BLOCK:
            return []
        if beit and module == 'attn.qkv' and leaf == 'bias':  # BEiTAttention: q / v biases
            return [f'layers.{index}.attn.q_bias', f'layers.{index}.attn.v_bias']
        return [f'layers.{index}.{VIT_BLOCK[module]}.{leaf}']
    stem, _, leaf = key.rpartition('.')
    if stem in VIT_TOP and leaf in ('weight', 'bias'):
        return [f'{VIT_TOP[stem]}.{leaf}']
    return []


def _vit_config(found: Dict[str, Tensor], beit: bool) -> Dict[str, Any]:
    """The mmpretrain backbone config the converted ViT loads into exactly."""
    needed = ['patch_embed.proj.weight', 'blocks.0.mlp.fc1.weight']
    if 'rel_pos_bias.relative_position_bias_table' in found:
        needed.append('rel_pos_bias.relative_position_index')
    missing = [key for key in needed if key not in found]
    if missing:
        raise KeyError(f'the ViT backbone lacks {missing}; is it a complete checkpoint of '
                       f'the authors\' VisionTransformer?')
    dims = found['cls_token'].shape[-1]
    patch = found['patch_embed.proj.weight'].shape[-1]
    layers = len({k.split('.')[1] for k in found if k.startswith('blocks.')})
    table = found.get('rel_pos_bias.relative_position_bias_table')
    # The weights do not show the head count; the authors' ViTs have 64-wide heads.
    heads = table.shape[1] if table is not None else max(dims // 64, 1)
    arch = dict(embed_dims=dims, num_layers=layers, num_heads=heads,
                feedforward_channels=found['blocks.0.mlp.fc1.weight'].shape[0])
    tokens = (found['pos_embed'].shape[1] if 'pos_embed' in found else
              found['rel_pos_bias.relative_position_index'].shape[0] if table is not None
              else (224 // patch) ** 2 + 1)
    config = dict(type='BEiTViT' if beit else 'VisionTransformer',
                  arch='base' if arch == VIT_B else arch,
                  img_size=math.isqrt(tokens - 1) * patch, patch_size=patch)
    has_bias = 'blocks.0.attn.qkv.bias' in found
    if beit:
        config.update(use_abs_pos_emb='pos_embed' in found, use_rel_pos_bias=False,
                      use_shared_rel_pos_bias=table is not None,
                      layer_scale_init_value=0.1 if 'blocks.0.gamma_1' in found else 0.0,
                      bias='qv_bias' if has_bias else False)
    elif not has_bias:
        config['qkv_bias'] = False
    config.update(final_norm='norm.weight' in found,
                  out_type='avg_featmap' if 'fc_norm.weight' in found else 'cls_token')
    return config


def _vit(found: Dict[str, Tensor]) -> Tuple[Dict[str, Tensor], Dict[str, Any]]:
    """The authors' ViT keys renamed to mmpretrain's, with the backbone they fit."""
    # Layer scale or the shared relative position bias: only mmpretrain's BEiTViT has them.
    beit = any(k.startswith('rel_pos_bias.') or re.match(r'^blocks\.\d+\.gamma_', k)
               for k in found)
    converted, unknown = {}, []
    for key, value in found.items():
        names = _vit_name(key, beit)
        if not names:
            unknown.append(key)
        elif len(names) == 2:  # qkv bias -> q_bias, v_bias; the k third has no effect
            q_bias, _, v_bias = value.chunk(3)
            converted.update({names[0]: q_bias.clone(), names[1]: v_bias.clone()})
        else:
            converted[names[0]] = value
    _refuse(unknown, 'HIRL-reference ViT')
    return converted, _vit_config(found, beit)


def convert_reference_state(content: Dict[str, Any], prefix: Optional[str] = None
                            ) -> Tuple[Dict[str, Tensor], Dict[str, Any]]:
    """A reference checkpoint's backbone as mmpretrain ``backbone.*`` keys, and its config.

    Args:
        content (dict): The loaded checkpoint (see :func:`model_state`).
        prefix (str, optional): Where the backbone lives (e.g. ``'model.backbone.'``);
            found automatically when None.

    Returns:
        tuple[dict[str, Tensor], dict]: ``backbone.<mmpretrain name>`` -> tensor, and the
        mmpretrain backbone config (``type``, ``arch``, ...) it loads into key for key and
        computes the authors' backbone output with.

    Raises:
        KeyError: No backbone found.
        ValueError: A key with no mmpretrain counterpart, or a ResNet of no known depth.
    """
    found, _ = backbone_state(model_state(content), prefix)
    found = {k: v for k, v in found.items() if not DROPPED.match(k)}
    state, config = _resnet(found) if 'conv1.weight' in found else _vit(found)
    return {f'backbone.{k}': v for k, v in state.items()}, config


def config_text(config: Dict[str, Any]) -> str:
    """A backbone config as the ``dict(...)`` to write in an mmengine config file."""
    return 'dict(' + ', '.join(f'{k}={v!r}' for k, v in config.items()) + ')'
