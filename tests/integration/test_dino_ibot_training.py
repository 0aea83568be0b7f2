"""Real short DINO / iBOT (and HIRL-DINO / HIRL-iBOT) pre-trainings through mmengine's
Runner on Fashion-MNIST images.

The tiny configs of configs/baselines/ at a few iterations: the loss is finite and goes
down, the schedules (teacher temperature, weight decay, EMA momentum, frozen last layer)
are where they should be, also after a resume, and the teacher's backbone of the written
checkpoint loads exactly into a ViT evaluation model.
"""
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from hirl_mm.evaluation.feature_model import build_feature_model, load_backbone_weights
from hirl_mm.utils.teacher_backbone import teacher_backbone_state
from tiny_setup import logged_scalars, needs_fashion_mnist, shrunk_config

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures('single_thread'),
              needs_fashion_mnist()]

CONFIGS = {name: f'configs/study/{name}_tiny-vit_fashion-mnist.py'
           for name in ('dino', 'ibot')}
PER_CLASS, BATCH = 8, 16  # 80 images: 5 iterations per epoch


def _cfg(name: str, work_dir: Path, max_epochs: int, **options) -> Config:
    cfg = Config.fromfile(CONFIGS[name])
    cfg.work_dir = str(work_dir)
    cfg.train_dataloader.dataset.num_per_class = PER_CLASS
    cfg.train_dataloader.batch_size = BATCH
    cfg.train_dataloader.num_workers = 0
    cfg.train_dataloader.persistent_workers = False
    cfg.train_cfg.max_epochs = max_epochs
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.max_keep_ckpts = 5
    cfg.merge_from_dict(options)
    return cfg




@pytest.mark.parametrize('name', ['dino', 'ibot'])
def test_short_pretraining_learns_and_its_teacher_transfers(name, tmp_path):
    # Centring deliberately raises the teacher's entropy in the first iterations (that is
    # how it prevents collapse), so the raw loss of a 20-iteration run climbs towards
    # log K. With the centre held at 0, a constant teacher temperature and no frozen layer,
    # the loss measures what optimisation does: the student learning to match the teacher.
    loss_cfg = dict(center_momentum=1.0)
    if name == 'ibot':
        loss_cfg['patch_center_momentum'] = 1.0
    cfg = _cfg(name, tmp_path, max_epochs=4, param_scheduler=[],
               optim_wrapper=dict(optimizer=dict(lr=2e-3)),
               model=dict(head=dict(loss=loss_cfg)))
    for hook in cfg.custom_hooks:
        if hook.type == 'TeacherTempWarmupHook':
            hook.warmup_epochs = 0
        if hook.type == 'FreezeLastLayerHook':
            hook.freeze_epochs = 0
    runner = Runner.from_cfg(cfg)
    runner.train()
    losses = np.array(logged_scalars(tmp_path, 'loss'))
    assert len(losses) == 4 * 5 and np.all(np.isfinite(losses))
    assert losses[-5:].mean() < losses[:5].mean() - 0.05, losses
    if name == 'ibot':
        assert np.all(np.isfinite(logged_scalars(tmp_path, 'loss_patch')))

    # The teacher's backbone of the checkpoint loads exactly into a ViT evaluation model.
    state = torch.load(tmp_path / 'epoch_4.pth', map_location='cpu')['state_dict']
    converted = tmp_path / 'teacher_backbone.pth'
    torch.save(dict(state_dict=teacher_backbone_state(state)), converted)
    eval_cfg = Config(dict(model=dict(backbone=dict(
        type='VisionTransformer', arch=cfg.model.backbone.arch, img_size=28, patch_size=4,
        out_type='cls_token'))))
    feature_model = build_feature_model(eval_cfg)
    assert load_backbone_weights(feature_model, str(converted)) == \
        len(runner.model.teacher.module[0].state_dict()) - (name == 'ibot')
    teacher = runner.model.teacher.module[0]
    teacher.eval()
    images = torch.randn(2, 3, 28, 28)
    expected = teacher(images)[0]
    if name == 'ibot':  # its backbone outputs all tokens: [CLS] is the first
        expected = expected[:, 0]
    torch.testing.assert_close(feature_model.embed(images), expected)


def _schedule_state(runner: Runner) -> dict:
    model = runner.model
    decays = {group['weight_decay'] for group in runner.optim_wrapper.param_groups}
    return dict(teacher_temp=model.head.loss_module.teacher_temp,
                weight_decay=max(decays), no_decay=min(decays),
                ema_steps=int(model.teacher.steps))


def test_schedules_follow_the_recipe_and_survive_a_resume(tmp_path):
    """3 epochs in one go vs 2 epochs + a resume: the same schedules, by the formulas."""
    options = dict(custom_hooks=[
        dict(type='TeacherTempWarmupHook', warmup_temp=0.04, temp=0.07, warmup_epochs=3,
             attribute='head.loss_module.teacher_temp'),
        dict(type='FreezeLastLayerHook', module='neck.last_layer', freeze_epochs=1)])
    straight = Runner.from_cfg(_cfg('dino', tmp_path / 'straight', max_epochs=3, **options))
    straight.train()

    first = Runner.from_cfg(_cfg('dino', tmp_path / 'resumed', max_epochs=3, **options))
    first.train_loop._max_epochs = 2  # stop after epoch 2, as a killed job would
    first.train()
    frozen_after_1 = torch.load(tmp_path / 'resumed' / 'epoch_1.pth',
                                map_location='cpu')['state_dict']['neck.last_layer.weight_v']
    resumed = Runner.from_cfg(_cfg('dino', tmp_path / 'resumed', max_epochs=3,
                                   resume=True, **options))
    resumed.train()

    a, b = _schedule_state(straight), _schedule_state(resumed)
    assert a['teacher_temp'] == pytest.approx(0.07) == b['teacher_temp']  # epoch 3 of 3
    assert a['ema_steps'] == b['ema_steps'] == 15
    # Weight decay: cosine 0.04 -> 0.4 over the config's 10 epochs (50 iterations here),
    # after 15 steps; the biases and norms stay at 0.
    expected = 0.4 + (0.04 - 0.4) * (1 + math.cos(math.pi * 15 / 50)) / 2
    assert a['weight_decay'] == pytest.approx(expected, abs=1e-6)
    assert b['weight_decay'] == pytest.approx(expected, abs=1e-6)
    assert a['no_decay'] == b['no_decay'] == 0
    # The temperature the loss saw in each epoch, and the frozen first epoch.
    temps = logged_scalars(tmp_path / 'straight', 'teacher_temp')
    assert sorted(set(round(t, 6) for t in temps)) == [0.04, 0.055, 0.07]
    init_state = torch.load(tmp_path / 'straight' / 'epoch_1.pth',
                            map_location='cpu')['state_dict']['neck.last_layer.weight_v']
    assert not torch.equal(init_state, straight.model.neck.last_layer.weight_v.detach())
    assert torch.equal(frozen_after_1, init_state)  # same seed, same frozen first epoch


@pytest.mark.parametrize('name', ['dino', 'ibot'])
def test_hirl_short_pretraining_clusters_the_teacher_bottleneck(name, tmp_path):
    """HIRL-DINO / HIRL-iBOT: a clustering round after a 1-epoch warm-up, then the
    semantic loss; prototypes in the 64-d bottleneck space of the teacher."""
    cfg = shrunk_config(f'configs/study/hirl-{name}_tiny-vit_fashion-mnist.py', tmp_path,
                        num_per_class=PER_CLASS, batch_size=BATCH, max_epochs=2)
    runner = Runner.from_cfg(cfg)
    runner.train()
    protos = runner.model.prototypes
    assert protos.ready and int(protos.num_updates) == 1 and protos.num_samples == 80
    assert protos.centroids[0].shape == (12, 64)
    semantic = np.array(logged_scalars(tmp_path, 'loss_semantic'))
    assert np.all(semantic[:5] == 0) and np.all(semantic[5:] > 0)
    assert np.all(np.isfinite(logged_scalars(tmp_path, 'loss')))

    # hirl_report reads the checkpoint: the teacher's backbone, the stored levels.
    report_cfg = Config.fromfile(f'configs/study/hirl-{name}_tiny-vit_fashion-mnist.py')
    report_cfg.train_dataloader.dataset.num_per_class = PER_CLASS
    report_cfg.report = dict(
        query_dataset=dict(report_cfg.train_dataloader.dataset, split='test',
                           num_per_class=2, pipeline=[dict(type='PackInputs')]),
        eval_pipeline=[dict(type='PackInputs')], knn_ks=[1, 5], batch_size=32)
    report_cfg.dump(str(tmp_path / 'report_cfg.py'))
    spec = importlib.util.spec_from_file_location(
        'hirl_report', 'tools/analysis_tools/hirl_report.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = tmp_path / 'report.json'
    assert tool.main([str(tmp_path / 'report_cfg.py'), str(tmp_path / 'epoch_2.pth'),
                      '--out', str(out)]) == 0
    report = json.loads(out.read_text())
    assert report['prototype_space'] == 'neck' and report['prototype_dim'] == 64
    assert set(report['knn_top1']) == {'1', '5'} and len(report['level_scores']) == 3
