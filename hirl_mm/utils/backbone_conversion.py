"""Write a checkpoint's backbone, converted, as a ``backbone.*`` checkpoint (model converters).

The steps every converter of ``tools/model_converters/`` shares: check the input exists,
read it, convert its state dict, write ``{'state_dict', 'meta'}`` with where it came from.
"""
import os.path as osp
import sys
from typing import Callable, Dict, Optional

import torch
from torch import Tensor

from hirl_mm.evaluation.checkpoint_reading import (checkpoint_meta, checkpoint_state,
                                                   load_checkpoint_file)

__all__ = ['convert_backbone_checkpoint']


def convert_backbone_checkpoint(checkpoint: str, output: str,
                                convert: Callable[[Dict[str, Tensor]], Dict[str, Tensor]],
                                **meta) -> Optional[Dict[str, Tensor]]:
    """Convert ``checkpoint``'s state dict with ``convert`` and save it to ``output``.

    Args:
        checkpoint (str): The checkpoint written by hirl_mm.
        output (str): The file to write.
        convert (callable): State dict -> ``backbone.*`` state dict; raises ``KeyError`` or
            ``ValueError`` (with the message to show) on an unsuitable checkpoint.
        **meta: What the output's ``meta`` records besides the source checkpoint, its
            epoch, iteration and pre-training config.

    Returns:
        dict | None: The written state dict, or None after printing ``error: ...`` to
        stderr (missing file, unsuitable checkpoint).
    """
    if not osp.isfile(checkpoint):
        print(f'error: {checkpoint} does not exist.', file=sys.stderr)
        return None
    loaded = load_checkpoint_file(checkpoint)
    try:
        state = convert(checkpoint_state(loaded))
    except (KeyError, ValueError) as error:
        print(f'error: {error.args[0]}', file=sys.stderr)
        return None
    source_meta = checkpoint_meta(loaded)
    out_meta = dict(source_checkpoint=osp.abspath(checkpoint), **meta,
                    epoch=source_meta.get('epoch'), iter=source_meta.get('iter'),
                    cfg=source_meta.get('cfg'))
    torch.save(dict(state_dict=state, meta=out_meta), output)
    return state
