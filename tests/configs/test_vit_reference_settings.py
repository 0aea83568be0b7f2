"""The ViT-B/16 configs and their baselines carry the HIRL authors' settings
(hirl-team/HIRL configs/pretrain/{baseline,hirl}/*_vit_base_400eps.yaml and its runners):
read from the built configs, models, optimizers and schedulers."""
import math
import re
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmpretrain.registry import PARAM_SCHEDULERS

from hirl_mm.engine.optimizers import FIXED_DECAY_KEY
from hirl_mm.registry import MODELS

pytestmark = pytest.mark.usefixtures('single_thread')

CONFIGS = Path(__file__).parents[2] / 'configs'
DINO_LIKE = ['hirl/dino_vit-b16.py', 'hirl/dino_vit-b16_8xb128.py', 'hirl/ibot_vit-b16.py',
             'hirl/ibot_vit-b16_8xb128.py',
             'baselines/dino_vit-base-p16_32xb32-amp-coslr-400e_in1k.py',
             'baselines/dino_vit-base-p16_8xb128-amp-coslr-400e_in1k.py',
             'baselines/ibot_vit-base-p16_32xb32-amp-coslr-400e_in1k.py',
             'baselines/ibot_vit-base-p16_8xb128-amp-coslr-400e_in1k.py']
# use_fp16 of each reference yaml: fp16 -> AmpOptimWrapper, fp32 -> OptimWrapper.
PRECISION = {
    'hirl/dino_vit-b16.py': 'OptimWrapper',  # hirl_dino_vit_base_400eps.yaml: False
    'baselines/dino_vit-base-p16_32xb32-amp-coslr-400e_in1k.py': 'AmpOptimWrapper',
    'hirl/ibot_vit-b16.py': 'AmpOptimWrapper',
    'baselines/ibot_vit-base-p16_32xb32-amp-coslr-400e_in1k.py': 'AmpOptimWrapper',
    'hirl/mocov3_vit-b16.py': 'AmpOptimWrapper',
    'baselines/mocov3_vit-base-p16_16xb256-amp-coslr-400e_in1k.py': 'AmpOptimWrapper',
    'hirl/beit_vit-b16.py': 'OptimWrapper',  # both BEiT yamls: use_fp16: False
    'baselines/beit_beit-base-p16_8xb256-coslr-400e_in1k.py': 'OptimWrapper',
}
# The semantic heads' group: the weight decay the authors' AdamW is built with.
HEAD_DECAY = {'hirl/dino_vit-b16.py': 0.01, 'hirl/ibot_vit-b16.py': 0.01,
              'hirl/mocov3_vit-b16.py': 0.1, 'hirl/beit_vit-b16.py': 0.05}


def _cfg(path: str) -> Config:
    cfg = Config.fromfile(str(CONFIGS / path))
    init_default_scope(cfg.default_scope)
    return cfg


@pytest.mark.parametrize('path', DINO_LIKE)
def test_global_gradient_norm_clipped_at_0_3(path):
    """The authors' runner: clip_grad_norm_(model.parameters(), 0.3), heads included; no
    per-parameter clipping (the original DINO / iBOT repositories' way)."""
    cfg = _cfg(path)
    assert cfg.optim_wrapper.clip_grad == dict(max_norm=0.3)
    assert 'PerParamGradClipHook' not in [h['type'] for h in cfg.custom_hooks]


@pytest.mark.parametrize('path', sorted(PRECISION))
def test_precision_is_the_reference_runs(path):
    cfg = _cfg(path)
    assert cfg.optim_wrapper.type == PRECISION[path]
    if PRECISION[path] == 'OptimWrapper':
        assert 'loss_scale' not in cfg.optim_wrapper
    if path.startswith('baselines/'):  # the file name says amp exactly when it is
        assert ('-amp-' in path) == (PRECISION[path] == 'AmpOptimWrapper')


@pytest.mark.parametrize('path', DINO_LIKE)
def test_gpu_layout_in_the_name_and_the_batch(path):
    """32 GPUs x 32 as the authors (8 x 128 variants): 1024 in total, lr for 1024."""
    cfg = _cfg(path)
    gpus, per_gpu = ((8, 128) if '8xb128' in path else (32, 32))
    match = re.search(r'(\d+)xb(\d+)', path)
    if match:
        assert (int(match[1]), int(match[2])) == (gpus, per_gpu)
    assert cfg.train_dataloader.batch_size == per_gpu and gpus * per_gpu == 1024
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(0.00075 * 1024 / 256)
    assert f'GPUS={gpus}' in (CONFIGS / path).read_text() or f' {gpus}\n' in \
        (CONFIGS / path).read_text()


def _meta_model(cfg: Config):
    """The config's model on the meta device: shapes only, no memory for the weights."""
    with torch.device('meta'):
        return MODELS.build(cfg.model)


def _meta_model_and_optimizer(cfg: Config):
    """The config's model on the meta device and its optimizer (built as the config says;
    OptimWrapper for AmpOptimWrapper, which needs CUDA: the groups are the same)."""
    model = _meta_model(cfg)
    optim_cfg = dict(cfg.optim_wrapper, type='OptimWrapper')
    optim_cfg.pop('loss_scale', None)
    return model, build_optim_wrapper(model, optim_cfg)


@pytest.mark.parametrize('path', sorted(HEAD_DECAY))
def test_semantic_heads_keep_their_weight_decay_over_the_schedule(path):
    """The heads: one group, every parameter (BN, biases too) at the authors' decay, the
    same over 400 scheduled epochs; the lr schedule applies to it as to the backbone."""
    cfg = _cfg(path)
    model, optim_wrapper = _meta_model_and_optimizer(cfg)
    groups = optim_wrapper.optimizer.param_groups
    head = [g for g in groups if g.get(FIXED_DECAY_KEY)]
    assert len(head) == 1
    assert {id(p) for p in head[0]['params']} == \
        {id(p) for p in model.semantic_head.parameters()}
    schedulers = [PARAM_SCHEDULERS.build(s, default_args=dict(optimizer=optim_wrapper,
                                                              epoch_length=1))
                  for s in cfg.param_scheduler]
    first = groups[0]
    initial_wd = first['weight_decay']
    seen_wd = []
    for epoch in range(cfg.train_cfg.max_epochs):
        assert head[0]['weight_decay'] == HEAD_DECAY[path]
        assert head[0]['lr'] == pytest.approx(first['lr'], rel=1e-9, abs=1e-15)
        seen_wd.append(first['weight_decay'])
        for scheduler in schedulers:
            scheduler.step()
    if 'dino' in path or 'ibot' in path:  # the ViT's 0.04 -> 0.4 cosine, group 0 only
        assert initial_wd == 0.04 and seen_wd[-1] == pytest.approx(
            0.4 + (0.04 - 0.4) * (1 + math.cos(math.pi * 399 / 400)) / 2)
    else:
        assert set(seen_wd) == {initial_wd}


@pytest.mark.parametrize('path', ['hirl/dino_vit-b16.py', 'hirl/ibot_vit-b16.py'] +
                         DINO_LIKE[4:])
def test_teacher_head_is_its_own_random_init(path):
    model = _meta_model(_cfg(path))
    assert model.teacher_neck_init == 'independent'
    assert model.backbone.pos_embed_interpolation == 'scale_factor'


@pytest.mark.parametrize('name', ['hirl-dino', 'hirl-ibot', 'dino', 'ibot'])
def test_tiny_teacher_head_differs_from_the_student_head_at_init(name):
    cfg = _cfg(f'study/{name}_tiny-vit_fashion-mnist.py')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    teacher = model.teacher.module
    torch.testing.assert_close(teacher[0].state_dict(), model.backbone.state_dict())
    student_neck = model.neck.state_dict()
    drawn = {k: v for k, v in teacher[1].state_dict().items()
             if v.is_floating_point() and v.numel() > 1 and v.std() > 0}
    assert drawn and all(not torch.equal(v, student_neck[k]) for k, v in drawn.items())


def test_mocov3_key_encoder_keeps_its_own_bn_statistics():
    model = _meta_model(_cfg('hirl/mocov3_vit-b16.py'))
    assert model.momentum_buffers == 'own'
    assert model.momentum_encoder.buffer_source == 'own'


def test_beit_patch_embedding_keeps_pytorchs_default_init():
    """The reference's BEiT initialises Linear and LayerNorm only: the patch convolution
    keeps torch's kaiming-uniform default, bounded by 1 / sqrt(fan_in)."""
    cfg = _cfg('hirl/beit_vit-b16.py')
    backbone = dict(cfg.model.backbone, arch=dict(embed_dims=64, num_layers=1, num_heads=2,
                                                  feedforward_channels=128))
    torch.manual_seed(0)
    vit = MODELS.build(backbone)
    vit.init_weights()
    weight = vit.patch_embed.projection.weight.detach()
    bound = 1 / math.sqrt(weight[0].numel())
    assert weight.abs().max() <= bound  # a truncated normal (std 0.02) would pass 0.036
    assert float(weight.std()) == pytest.approx(bound / math.sqrt(3), rel=0.05)
