"""Write the teacher backbone of a DINO / iBOT checkpoint as a ``backbone.`` checkpoint.

(``--source momentum`` writes any averaged encoder's backbone instead, e.g. MoCo v3's
momentum encoder; ``--source student`` the student's.)

Usage::

    python tools/model_converters/teacher_backbone.py \\
        work_dirs/dino_vit-b16/epoch_400.pth work_dirs/dino_vit-b16/teacher_backbone.pth

The output holds ``state_dict`` = ``{'backbone.<name>': tensor}`` (the papers evaluate the
teacher; ``--source student`` takes the student) and ``meta`` (source checkpoint, epoch,
iteration, and the pre-training config). It loads key for key into mmpretrain's
``VisionTransformer`` of the classification configs and the mmdet / mmseg ViT configs in
``configs/benchmarks/`` (the evaluation tools check this and stop otherwise).
"""
import argparse
import sys
from typing import List, Optional

import hirl_mm  # noqa: F401  (allow-lists mmengine's checkpoint types)
from hirl_mm.utils.backbone_conversion import convert_backbone_checkpoint
from hirl_mm.utils.teacher_backbone import SOURCES, teacher_backbone_state


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('checkpoint', help='DINO / iBOT checkpoint written by hirl_mm')
    parser.add_argument('output', help='file to write (.pth)')
    parser.add_argument('--source', choices=SOURCES, default='teacher',
                        help='which backbone to write: teacher (DINO / iBOT, as the papers; '
                        'default), momentum (any averaged encoder: also MoCo v3\'s momentum '
                        'encoder, BYOL\'s target network) or student')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    state = convert_backbone_checkpoint(
        args.checkpoint, args.output,
        lambda state: teacher_backbone_state(state, args.source), backbone=args.source)
    if state is None:
        return 2
    print(f'wrote the {args.source} backbone ({len(state)} tensors) of {args.checkpoint} '
          f'to {args.output}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
