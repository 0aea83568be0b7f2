import pytest
import torch
from torch import nn

from hirl_mm.utils.pretrained import (PretrainedLoadingError, inject_pretrained,
                                      verify_pretrained_loading)


def test_inject_fills_markers_or_adds_one_to_the_backbone():
    marker = dict(type='Pretrained', checkpoint=None, prefix='backbone.')
    cfg = dict(type='MaskRCNN', backbone=dict(type='ResNet', init_cfg=dict(marker)),
               roi_head=dict(shared_head=dict(type='ResLayer', init_cfg=dict(marker)),
                             bbox_head=dict(init_cfg=dict(type='Normal'))))
    assert inject_pretrained(cfg, 'a.pth') == ['backbone', 'roi_head.shared_head']
    assert cfg['backbone']['init_cfg']['checkpoint'] == 'a.pth'
    assert cfg['roi_head']['shared_head']['init_cfg']['checkpoint'] == 'a.pth'
    assert cfg['roi_head']['bbox_head']['init_cfg'] == dict(type='Normal')

    plain = dict(type='EncoderDecoder', backbone=dict(type='ResNet'))
    assert inject_pretrained(plain, 'b.pth') == ['backbone']
    assert plain['backbone']['init_cfg'] == dict(type='Pretrained', checkpoint='b.pth',
                                                 prefix='backbone.')
    with pytest.raises(PretrainedLoadingError, match='no `backbone`'):
        inject_pretrained(dict(type='X'), 'c.pth')


class _Split(nn.Module):
    """A C4-like model: the checkpoint's layers split over backbone and a shared head."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(2, 2))
        self.head = nn.Module()
        self.head.extra = nn.Linear(2, 2)


def _save(tmp_path, keys):
    state = {f'backbone.{k}': torch.zeros(2) for k in keys}
    state['neck.weight'] = torch.zeros(1)
    path = tmp_path / 'ckpt.pth'
    torch.save(dict(state_dict=state), path)
    return str(path)


def test_verify_accepts_an_exact_split(tmp_path):
    path = _save(tmp_path, ['0.weight', '0.bias', 'extra.weight', 'extra.bias'])
    loaded = verify_pretrained_loading(_Split(), path, ['backbone', 'head'])
    assert loaded == {'backbone': 2, 'head': 2}


def test_verify_reports_missing_and_unexpected(tmp_path):
    path = _save(tmp_path, ['0.weight', 'extra.weight', 'extra.bias', 'stem.0.weight'])
    with pytest.raises(PretrainedLoadingError) as error:
        verify_pretrained_loading(_Split(), path, ['backbone', 'head'])
    message = str(error.value)
    assert "backbone: 1 keys missing from the checkpoint, e.g. ['0.bias']" in message
    assert "1 checkpoint keys loaded by no module, e.g. ['stem.0.weight']" in message


def test_verify_without_backbone_weights(tmp_path):
    path = tmp_path / 'other.pth'
    torch.save(dict(state_dict={'head.weight': torch.zeros(1)}), path)
    with pytest.raises(PretrainedLoadingError, match="no weights under the prefix"):
        verify_pretrained_loading(_Split(), str(path), ['backbone'])
    with pytest.raises(PretrainedLoadingError, match="no module 'nothing'"):
        verify_pretrained_loading(_Split(), _save(tmp_path, ['0.weight']), ['nothing'])
