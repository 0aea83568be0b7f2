"""A BEiT (v1) pre-training backbone as the keys of mmpretrain's fine-tuning ``BEiTViT``.

BEiT pre-trains mmpretrain's ``BEiTPretrainViT`` with one relative position bias shared by
all blocks (``rel_pos_bias.relative_position_bias_table`` and its index buffer), a final
LayerNorm (``ln1``) and the masked-patch embedding (``mask_token``). BEiT's fine-tuning
model (mmpretrain's ``BEiTViT`` with ``use_rel_pos_bias=True,
use_shared_rel_pos_bias=False``, ``out_type='avg_featmap'``: the official
``beit_base_patch16_224`` with ``use_mean_pooling``) instead has a table per block
(``layers.{i}.attn.relative_position_bias_table`` and ``...relative_position_index``), no
final norm on the tokens and a LayerNorm after the mean pooling (``ln2``, BEiT's
``fc_norm``). BEiT's ``run_class_finetuning.py`` copies the shared table into every
block (as ``BEiTViT``'s load-state-dict pre-hook ``_prepare_relative_position_bias_table``
does) and loads non-strictly: the pre-training final norm and ``mask_token`` are left
unused and ``fc_norm`` keeps its initial values (LayerNorm weight 1, bias 0).

hirl_mm checks downstream loading key for key (:mod:`hirl_mm.utils.pretrained`), on the
file's keys, before any pre-hook runs; :func:`beit_finetune_state` therefore does that
conversion on the file, writing exactly the keys of the fine-tuning ``BEiTViT``.
"""
from typing import Dict, List, Tuple

import torch
from torch import Tensor

__all__ = ['SHARED_TABLE', 'SHARED_INDEX', 'PRETRAIN_ONLY_KEYS', 'FRESH_KEYS',
           'beit_finetune_state', 'is_beit_pretrain_state']

BACKBONE_PREFIX = 'backbone.'
SHARED_TABLE = 'rel_pos_bias.relative_position_bias_table'
SHARED_INDEX = 'rel_pos_bias.relative_position_index'
LAYER_TABLE = 'layers.{}.attn.relative_position_bias_table'
LAYER_INDEX = 'layers.{}.attn.relative_position_index'
# Pre-training only: the masked-patch embedding and the final LayerNorm on all tokens (the
# fine-tuning model pools the patch tokens and normalises the mean instead).
PRETRAIN_ONLY_KEYS = ('mask_token', 'ln1.weight', 'ln1.bias')
# The fine-tuning model's LayerNorm after the mean pooling (BEiT's fc_norm): not
# pre-trained, written with LayerNorm's initial values (weight 1, bias 0) as BEiT starts it.
FRESH_KEYS = ('ln2.weight', 'ln2.bias')


def is_beit_pretrain_state(state_dict: Dict[str, Tensor]) -> bool:
    """Whether a state dict holds a BEiT pre-training backbone (a shared position bias)."""
    return BACKBONE_PREFIX + SHARED_TABLE in state_dict


def _layer_indices(backbone: Dict[str, Tensor]) -> List[int]:
    indices = sorted({int(key.split('.')[1]) for key in backbone
                      if key.startswith('layers.') and key.split('.')[1].isdigit()})
    if not indices:
        raise KeyError('The backbone has no transformer blocks (layers.{i}.*); is it a '
                       'BEiT ViT?')
    if indices != list(range(len(indices))):
        raise ValueError(f'The backbone\'s blocks are not numbered 0..n-1: {indices}.')
    return indices


def _shared_bias(backbone: Dict[str, Tensor]) -> Tuple[Tensor, Tensor]:
    if SHARED_TABLE not in backbone:
        per_layer = any(key.endswith('attn.relative_position_bias_table')
                        for key in backbone)
        hint = ('it already has per-block tables (the fine-tuning layout: load it as it '
                'is)' if per_layer else 'is it a BEiT (v1) pre-training checkpoint '
                '(BEiTPretrainViT with a shared relative position bias)? DINO / iBOT / '
                'MoCo v3 checkpoints go through tools/model_converters/teacher_backbone.py')
        raise KeyError(f'No shared relative position bias (backbone.{SHARED_TABLE}) in the '
                       f'checkpoint; {hint}.')
    if SHARED_INDEX not in backbone:
        raise KeyError(f'The checkpoint has backbone.{SHARED_TABLE} but not its index '
                       f'buffer backbone.{SHARED_INDEX}.')
    table, index = backbone[SHARED_TABLE], backbone[SHARED_INDEX]
    if table.dim() != 2:
        raise ValueError(f'backbone.{SHARED_TABLE} should be (num_relative_distance, '
                         f'num_heads), got shape {tuple(table.shape)}.')
    if index.numel() and not index.is_meta and int(index.max()) >= table.shape[0]:
        raise ValueError(f'backbone.{SHARED_INDEX} points past the table '
                         f'({int(index.max())} >= {table.shape[0]} rows).')
    return table, index


def beit_finetune_state(state_dict: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """The ``backbone.*`` of a BEiT pre-training checkpoint, keyed as the fine-tuning model.

    The shared relative position bias table is copied into every block
    (``layers.{i}.attn.relative_position_bias_table``), as BEiT's fine-tuning and
    mmpretrain's ``BEiTViT`` pre-hook do; its index buffer likewise into
    ``layers.{i}.attn.relative_position_index`` (the fine-tuning model keeps that buffer in
    its state dict, and builds the very same index for the same patch grid; at another
    resolution ``BEiTViT`` interpolates the tables and rebuilds the index itself). The
    pre-training-only ``mask_token`` and final norm ``ln1`` are left out and the pooled
    features' LayerNorm ``ln2`` (BEiT's ``fc_norm``, not pre-trained) is written with
    LayerNorm's initial values, weight 1 and bias 0, as BEiT's fine-tuning starts it. Every
    other tensor is passed on unchanged. The result has exactly the keys of mmpretrain's
    ``BEiTViT(use_rel_pos_bias=True, use_shared_rel_pos_bias=False,
    out_type='avg_featmap')`` of the same architecture.

    Args:
        state_dict (dict[str, Tensor]): A BEiT (or HIRL-BEiT) pre-training checkpoint's
            state dict, its backbone under ``backbone.``; other modules (head, tokenizer,
            HIRL's) are ignored.

    Returns:
        dict[str, Tensor]: ``backbone.<name>`` tensors for the fine-tuning ``BEiTViT``.

    Raises:
        KeyError: If there is no ``backbone.*``, no shared relative position bias (e.g. a
            DINO / iBOT checkpoint, or one already in the fine-tuning layout), or no final
            norm to take ``ln2``'s width and type from.
        ValueError: If the shared bias or the block numbering is malformed, or a block
            already has its own relative position bias table.
    """
    backbone = {key[len(BACKBONE_PREFIX):]: value for key, value in state_dict.items()
                if key.startswith(BACKBONE_PREFIX)}
    if not backbone:
        roots = sorted({key.split('.')[0] for key in state_dict})
        raise KeyError(f'No backbone under {BACKBONE_PREFIX!r} in the checkpoint (its '
                       f'top-level modules: {roots}).')
    table, index = _shared_bias(backbone)
    layers = _layer_indices(backbone)
    clashing = [LAYER_TABLE.format(i) for i in layers if LAYER_TABLE.format(i) in backbone]
    if clashing:
        raise ValueError(f'The checkpoint has both the shared table and per-block ones '
                         f'({clashing[:3]}); it is neither layout.')
    if 'ln1.weight' not in backbone or 'ln1.bias' not in backbone:
        raise KeyError('The backbone has no final norm (backbone.ln1.*); BEiT pre-training '
                       'has one (BEiTPretrainViT, final_norm=True).')

    out = {key: value for key, value in backbone.items()
           if key not in (SHARED_TABLE, SHARED_INDEX) and key not in PRETRAIN_ONLY_KEYS}
    for i in layers:
        out[LAYER_TABLE.format(i)] = table.clone()
        out[LAYER_INDEX.format(i)] = index.clone()
    out['ln2.weight'] = torch.ones_like(backbone['ln1.weight'])
    out['ln2.bias'] = torch.zeros_like(backbone['ln1.bias'])
    return {f'{BACKBONE_PREFIX}{key}': value for key, value in out.items()}
