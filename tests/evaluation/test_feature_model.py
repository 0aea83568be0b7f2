"""hirl_mm.evaluation.feature_model and checkpoint_reading: the backbone, loaded exactly."""
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from hirl_mm.evaluation.checkpoint_reading import (checkpoint_meta, load_checkpoint_file,
                                                   load_checkpoint_state, pretrain_config)
from hirl_mm.evaluation.feature_model import (BackboneFeatureModel, build_feature_model,
                                              load_backbone_weights)
from hirl_mm.utils.launch import MissingInputError
from hirl_mm.utils.pretrained import PretrainedLoadingError

TINY_BACKBONE = dict(type='ResNet', depth=18, base_channels=8, stem_channels=8)
PREPROCESSOR = dict(type='ClsDataPreprocessor', mean=[60.0] * 3, std=[60.0] * 3, to_rgb=True)


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmpretrain')


def _cfg(**backbone) -> Config:
    return Config(dict(model=dict(backbone=dict(TINY_BACKBONE, **backbone),
                                  data_preprocessor=PREPROCESSOR)))


def _save_checkpoint(path, backbone: torch.nn.Module, extra=None, drop=None, meta=None):
    """An SSL-style checkpoint: backbone.* beside other modules' weights."""
    state = {f'backbone.{k}': v for k, v in backbone.state_dict().items() if k != drop}
    state['neck.fc.weight'] = torch.zeros(2, 2)
    state.update(extra or {})
    torch.save(dict(state_dict=state, meta=meta or dict()), path)
    return str(path)


def test_build_feature_model_drops_init_cfg_and_finds_the_preprocessor():
    cfg = _cfg(init_cfg=dict(type='Pretrained', checkpoint='missing.pth', prefix='backbone.'))
    model = build_feature_model(cfg)
    assert isinstance(model, BackboneFeatureModel)
    assert type(model.data_preprocessor).__name__ == 'ClsDataPreprocessor'
    model.init_weights()  # the dropped init_cfg would fail on the missing file
    # mmpretrain's dataset bases put the preprocessor at the top level.
    cfg = Config(dict(model=dict(backbone=TINY_BACKBONE), data_preprocessor=dict(
        num_classes=4, mean=[1.0] * 3, std=[2.0] * 3)))
    model = build_feature_model(cfg)
    assert model.data_preprocessor.mean.flatten().tolist() == [1.0] * 3
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 64)
    with pytest.raises(ValueError, match='model.backbone'):
        build_feature_model(Config(dict(model=dict())))


def test_load_backbone_weights_exactly(tmp_path):
    source = build_feature_model(_cfg()).backbone
    ckpt = _save_checkpoint(tmp_path / 'ssl.pth', source,
                            extra={'prototypes.centroids_0': torch.zeros(3, 64)})
    model = build_feature_model(_cfg())
    assert load_backbone_weights(model, ckpt) == len(source.state_dict())
    for key, value in source.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[key], value), key
    assert 'neck.fc.weight' in load_checkpoint_state(ckpt)


def test_load_backbone_weights_refuses_what_does_not_fit(tmp_path):
    source = build_feature_model(_cfg()).backbone
    model = build_feature_model(_cfg())
    missing = _save_checkpoint(tmp_path / 'missing.pth', source, drop='conv1.weight')
    with pytest.raises(PretrainedLoadingError, match='missing'):
        load_backbone_weights(model, missing)
    extra = _save_checkpoint(tmp_path / 'extra.pth', source,
                             extra={'backbone.fc.weight': torch.zeros(1)})
    with pytest.raises(PretrainedLoadingError, match='loaded by no module'):
        load_backbone_weights(model, extra)
    wider = _save_checkpoint(tmp_path / 'wider.pth',
                             build_feature_model(_cfg(base_channels=16)).backbone)
    with pytest.raises(PretrainedLoadingError, match='do not fit'):
        load_backbone_weights(model, wider)
    torch.save(dict(state_dict={'encoder.weight': torch.zeros(1)}), tmp_path / 'none.pth')
    with pytest.raises(PretrainedLoadingError, match="prefix 'backbone.'"):
        load_backbone_weights(model, str(tmp_path / 'none.pth'))


def test_checkpoint_meta_and_the_recorded_pretrain_config(tmp_path):
    source = build_feature_model(_cfg()).backbone
    recorded = Config(dict(default_scope='hirl_mm', model=dict(type='HIRL', embedding='neck')))
    ckpt = _save_checkpoint(tmp_path / 'ssl.pth', source,
                            meta=dict(cfg=recorded.pretty_text, epoch=2))
    meta = checkpoint_meta(load_checkpoint_file(ckpt))
    assert meta['epoch'] == 2
    cfg = pretrain_config(meta, fallback=str(tmp_path / 'ignored.py'))
    assert cfg.model.to_dict() == dict(type='HIRL', embedding='neck')

    # No recorded config: the fallback file, else None.
    plain = torch.load(ckpt, weights_only=True)['state_dict']
    torch.save(plain, tmp_path / 'bare.pth')  # a bare state dict: no meta at all
    assert checkpoint_meta(load_checkpoint_file(str(tmp_path / 'bare.pth'))) == {}
    assert 'neck.fc.weight' in load_checkpoint_state(str(tmp_path / 'bare.pth'))
    assert pretrain_config({}) is None
    fallback = tmp_path / 'pretrain.py'
    fallback.write_text("model = dict(type='HIRL', embedding='backbone')\n")
    assert pretrain_config({}, str(fallback)).model.embedding == 'backbone'
    with pytest.raises(MissingInputError, match='Pre-training config'):
        pretrain_config({}, str(tmp_path / 'missing.py'))
