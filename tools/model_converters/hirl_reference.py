"""Convert a released HIRL reference checkpoint into an mmpretrain ``backbone.*`` checkpoint.

Reads every backbone of the HIRL authors' model zoo (github.com/hirl-team/HIRL), baseline
or HIRL, DDP-saved or not: ResNet-50 (MoCo v2, SimSiam, SwAV) in torchvision's layout, ViT-B/16
(MoCo v3, DINO, iBOT) in DINO's layout, and BEiT's ViT-B/16 (BEiT, HIRL-BEiT: layer scale,
shared relative position bias), plus mean-pooled ViTs (``fc_norm``) and facebookresearch/dino
or MoCo v3 files. The key mapping is in ``hirl_mm/evaluation/reference_checkpoints.py``.

Usage::

    python tools/model_converters/hirl_reference.py hirl_mocov2_200eps_backbone.pth \\
        hirl_mocov2_200eps_mmpretrain.pth
    python tools/model_converters/hirl_reference.py hirl_beit_400eps_backbone.pth \\
        hirl_beit_400eps_mmpretrain.pth --prefix model.backbone.

It prints the mmpretrain backbone config the output loads into key for key (and records it
in the output's ``meta['backbone']``); with that backbone the output computes what the
authors' backbone computes ([CLS] token after the final norm, the mean-pooled ``fc_norm``
features, or the ResNet's last stage). The output is ``{'state_dict': {'backbone.<name>':
tensor}, 'meta': {...}}``, for ``init_cfg=dict(type='Pretrained', prefix='backbone.')``,
``load_from`` or hirl_mm's evaluation tools.
"""
import argparse
import sys
from typing import Any, Dict, List, Optional

import torch
from torch import Tensor

import hirl_mm  # noqa: F401  (allow-lists mmengine's checkpoint types)
from hirl_mm.evaluation.reference_checkpoints import (PREFIXES, config_text,
                                                      convert_reference_state)
from hirl_mm.utils.backbone_conversion import convert_backbone_checkpoint


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """The command line: input, output and where the backbone lives."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog='Converted: ResNet-50 (MoCo v2, '
        'SimSiam, SwAV) -> ResNet; ViT (MoCo v3, DINO, iBOT; fc_norm ones too) -> '
        'VisionTransformer; BEiT ViT (BEiT, HIRL-BEiT) -> BEiTViT with '
        'use_shared_rel_pos_bias=True. The exact backbone config is printed.')
    parser.add_argument('checkpoint', help='released HIRL (or DINO / MoCo v3) checkpoint')
    parser.add_argument('output', help='file to write (.pth)')
    parser.add_argument('--prefix', help='key prefix of the backbone after "module." '
                        f'(default: the first of {PREFIXES} that holds one)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Convert, write and print the backbone config; 0 on success, 2 on refusal."""
    args = parse_args(argv)
    backbone: Dict[str, Any] = {}  # filled by the conversion, then saved in meta

    def convert(content: Dict[str, Any]) -> Dict[str, Tensor]:
        state, config = convert_reference_state(content, args.prefix)
        backbone.update(config)
        return state

    # The reference saves its argparse options next to the weights; a Namespace only holds
    # attributes, and anything else the pickle names is still refused by weights-only loading.
    with torch.serialization.safe_globals([argparse.Namespace]):
        state = convert_backbone_checkpoint(args.checkpoint, args.output, convert,
                                            source_layout='hirl-reference',
                                            backbone=backbone)
    if state is None:
        return 2
    print(f'wrote the {backbone["type"]} backbone ({len(state)} tensors) of '
          f'{args.checkpoint} to {args.output}; load it into\n'
          f'    backbone={config_text(backbone)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
