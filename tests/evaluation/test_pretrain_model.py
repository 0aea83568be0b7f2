"""hirl_mm.evaluation.pretrain_model: the HIRL model rebuilt to embed in its prototypes'
space, with the checkpoint loaded strictly."""
import pytest
import torch
from mmengine.config import Config

from hirl_mm.evaluation.pretrain_model import (build_pretrain_model, load_pretrain_model,
                                               pretrain_model_key)
from hirl_mm.utils.pretrained import PretrainedLoadingError
from tiny_setup import EMBED_DIM, NECK_DIM, hirl_config


pytestmark = pytest.mark.usefixtures('single_thread')


def _cfg(tmp_path, embedding='neck', algorithm='SimCLR') -> Config:
    return Config(hirl_config(algorithm, tmp_path, tmp_path, embedding=embedding))


@pytest.mark.parametrize('algorithm,embedding,width', [
    ('SimCLR', 'neck', NECK_DIM), ('SimCLR', 'backbone', EMBED_DIM),
    ('MoCo', 'neck', NECK_DIM)])
def test_loaded_model_embeds_in_the_prototypes_space(tmp_path, algorithm, embedding, width):
    cfg = _cfg(tmp_path, embedding, algorithm)
    source = build_pretrain_model(cfg)
    with torch.no_grad():  # make the weights differ from a fresh build's
        for param in source.parameters():
            param.add_(0.01 * torch.randn_like(param))
    model = load_pretrain_model(cfg, source.state_dict(), 'x.pth')
    assert not model.training
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    images = torch.randn(3, 3, 32, 32)
    source.eval()
    embedding_out = model.extract_clustering_embedding(images)
    assert embedding_out.shape == (3, width)
    assert torch.allclose(embedding_out, source.extract_clustering_embedding(images))
    key = pretrain_model_key(cfg)
    assert key['features'] == 'extract_clustering_embedding'
    assert key['model']['embedding'] == embedding


def test_load_pretrain_model_is_strict(tmp_path):
    cfg = _cfg(tmp_path)
    state = build_pretrain_model(cfg).state_dict()
    missing = dict(state)
    missing.pop(next(k for k in state if k.startswith('neck.')))
    with pytest.raises(PretrainedLoadingError, match='does not fit its pre-training model'):
        load_pretrain_model(cfg, missing, 'x.pth')
    with pytest.raises(PretrainedLoadingError, match='Unexpected'):
        load_pretrain_model(cfg, dict(state, **{'extra.weight': torch.zeros(1)}), 'x.pth')
    # Prototypes clustered in another space than the config's.
    backbone_state = build_pretrain_model(_cfg(tmp_path, 'backbone')).state_dict()
    with pytest.raises(PretrainedLoadingError, match="'backbone'"):
        load_pretrain_model(cfg, backbone_state, 'x.pth')


def test_build_pretrain_model_needs_a_hirl_model():
    cfg = Config(dict(default_scope='mmpretrain', model=dict(
        type='SimCLR', backbone=dict(type='ResNet', depth=18, base_channels=8),
        neck=dict(type='NonLinearNeck', in_channels=64, hid_channels=8, out_channels=8,
                  norm_cfg=dict(type='BN1d')),
        head=dict(type='ContrastiveHead', loss=dict(type='CrossEntropyLoss')))))
    with pytest.raises(PretrainedLoadingError, match='not a HIRL pre-training config'):
        build_pretrain_model(cfg)
    with pytest.raises(PretrainedLoadingError, match='no model'):
        build_pretrain_model(Config(dict()))
