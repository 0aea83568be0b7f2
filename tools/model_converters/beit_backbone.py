"""Write a BEiT pre-training checkpoint's backbone with the keys of the fine-tuning BEiTViT.

Usage::

    python tools/model_converters/beit_backbone.py \\
        work_dirs/beit_vit-b16/epoch_400.pth work_dirs/beit_vit-b16/beit_backbone.pth

BEiT (and HIRL-BEiT) pre-train one relative position bias shared by all blocks; BEiT's
fine-tuning model (mmpretrain's ``BEiTViT`` with ``use_rel_pos_bias=True,
use_shared_rel_pos_bias=False``, mean pooling) has one per block. The output holds
``state_dict`` = ``{'backbone.<name>': tensor}`` with the shared table (and its index) copied
into every block, without the pre-training-only ``mask_token`` and final norm ``ln1``, and
with the pooled features' LayerNorm ``ln2`` at its initial values (BEiT's fresh
``fc_norm``); see ``hirl_mm/utils/beit_backbone.py``. ``meta`` records the source
checkpoint, epoch, iteration, the pre-training config and which keys were written fresh.
It loads key for key into the backbone of
``configs/benchmarks/classification/imagenet/beit-base-p16_ft-8xb128-coslr-100e_in1k.py``
(the evaluation tools check this and stop otherwise). The HIRL authors' released BEiT
weights, converted by ``tools/model_converters/hirl_reference.py``, are read the same way.
"""
import argparse
import sys
from typing import List, Optional

# (importing hirl_mm allow-lists mmengine's checkpoint types for torch.load)
from hirl_mm.utils.backbone_conversion import convert_backbone_checkpoint
from hirl_mm.utils.beit_backbone import FRESH_KEYS, beit_finetune_state


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('checkpoint', help='BEiT / HIRL-BEiT checkpoint written by hirl_mm, '
                        'or an authors\' BEiT converted by hirl_reference.py')
    parser.add_argument('output', help='file to write (.pth)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    state = convert_backbone_checkpoint(
        args.checkpoint, args.output, beit_finetune_state,
        backbone="BEiTViT(use_rel_pos_bias=True, use_shared_rel_pos_bias=False, "
        "out_type='avg_featmap')",
        fresh_keys=[f'backbone.{key}' for key in FRESH_KEYS])
    if state is None:
        return 2
    print(f'wrote the BEiT backbone of {args.checkpoint} in the fine-tuning layout '
          f'({len(state)} tensors; per-block relative position bias, '
          f'{" / ".join(FRESH_KEYS)} at LayerNorm\'s initial values) to {args.output}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
