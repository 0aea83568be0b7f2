"""Every shipped config loads, inherits mmpretrain's, and builds its model and hooks."""
from collections import defaultdict
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from hirl_mm.models.algorithms import HIRLMixin
from hirl_mm.registry import HOOKS, MODELS

CONFIGS = Path(__file__).parents[2] / 'configs'
HIRL_CONFIGS = sorted(p for p in (CONFIGS / 'hirl').glob('*.py'))
# 8-GPU variants of the ViT-B/16 configs (the authors ran 32 GPUs): <config>_8xb128.py.
VARIANT = '_8xb128'
EXPECTED = {'simclr_r50': 'SimCLR', 'mocov2_r50': 'MoCo', 'simsiam_r50': 'SimSiam',
            'swav_r50': 'SwAV', 'byol_r50': 'BYOL', 'barlowtwins_r50': 'BarlowTwins',
            'mocov3_vit-b16': 'MoCoV3', 'dino_vit-b16': 'DINO', 'ibot_vit-b16': 'iBOT',
            'beit_vit-b16': 'BEiT'}
# Each HIRL config's baseline: mmpretrain's file name for the config it wraps (the ViT-B/16
# ones at HIRL's 400 epochs), so that no baseline shares a work_dirs/<name>/ with a HIRL run.
BASELINES = {'simclr_r50': 'simclr_resnet50_16xb256-coslr-200e_in1k',
             'mocov2_r50': 'mocov2_resnet50_8xb32-coslr-200e_in1k',
             'simsiam_r50': 'simsiam_resnet50_8xb32-coslr-200e_in1k',
             'swav_r50': 'swav_resnet50_8xb32-mcrop-coslr-200e_in1k-224px-96px',
             'byol_r50': 'byol_resnet50_16xb256-coslr-200e_in1k',
             'barlowtwins_r50': 'barlowtwins_resnet50_8xb256-coslr-300e_in1k',
             'mocov3_vit-b16': 'mocov3_vit-base-p16_16xb256-amp-coslr-400e_in1k',
             'dino_vit-b16': 'dino_vit-base-p16_32xb32-amp-coslr-400e_in1k',
             'ibot_vit-b16': 'ibot_vit-base-p16_32xb32-amp-coslr-400e_in1k',
             'beit_vit-b16': 'beit_beit-base-p16_8xb256-coslr-400e_in1k'}
BASELINE_VARIANTS = {'dino_vit-b16_8xb128': 'dino_vit-base-p16_8xb128-amp-coslr-400e_in1k',
                     'ibot_vit-b16_8xb128': 'ibot_vit-base-p16_8xb128-amp-coslr-400e_in1k'}


def _method(stem: str) -> str:
    """The method config a (variant) config belongs to: dino_vit-b16_8xb128 -> dino_vit-b16."""
    return stem[:-len(VARIANT)] if stem.endswith(VARIANT) else stem
# The embedding each config trains and clusters, and its width: the projector (neck)
# output as in the reference (docs/en/method.md); Barlow Twins' 8192-d projector is too wide.
EMBEDDING = {'simclr_r50': ('neck', 128), 'mocov2_r50': ('neck', 128),
             'simsiam_r50': ('neck', 2048), 'swav_r50': ('neck', 128),
             'byol_r50': ('neck', 256), 'barlowtwins_r50': ('backbone', 2048),
             'mocov3_vit-b16': ('neck', 256), 'dino_vit-b16': ('neck', 256),
             'ibot_vit-b16': ('neck', 256), 'beit_vit-b16': ('backbone', 768)}
# HIRL's reference settings (docs/en/method.md): the CNN ones, and each ViT-B/16 run's.
CNN_SETTINGS = dict(num_clusters=[30000, 10000, 1000], num_neg_path=1000, num_mlp_layer=2,
                    warmup_epochs=20)
SETTINGS = {'mocov3_vit-b16': dict(num_clusters=[30000, 10000, 5000], num_neg_path=100,
                                   num_mlp_layer=5, warmup_epochs=40),
            'dino_vit-b16': dict(num_clusters=[30000, 10000, 5000], num_neg_path=100,
                                 num_mlp_layer=2, warmup_epochs=40),
            'ibot_vit-b16': dict(num_clusters=[30000, 10000, 1000], num_neg_path=100,
                                 num_mlp_layer=2, warmup_epochs=40),
            'beit_vit-b16': dict(num_clusters=[30000, 10000, 1000], num_neg_path=100,
                                 num_mlp_layer=2, warmup_epochs=40)}


def test_every_method_has_a_hirl_config_and_a_baseline():
    assert {p.stem for p in HIRL_CONFIGS} == set(EXPECTED) | set(BASELINE_VARIANTS)
    assert {p.stem for p in (CONFIGS / 'baselines').glob('*.py')} == \
        set(BASELINES.values()) | set(BASELINE_VARIANTS.values())


def test_no_two_configs_share_a_file_name():
    """tools/train.py names the work dir after the config's file name (work_dirs/<name>/):
    two configs with one name would write, and --resume, each other's checkpoints."""
    by_name = defaultdict(list)
    for path in CONFIGS.rglob('*.py'):
        by_name[path.name].append(str(path.relative_to(CONFIGS)))
    shared = {name: paths for name, paths in by_name.items() if len(paths) > 1}
    assert not shared, f'config file names used more than once: {shared}'


@pytest.mark.parametrize('path', HIRL_CONFIGS, ids=lambda p: p.stem)
def test_hirl_config_builds(path):
    cfg = Config.fromfile(str(path))
    name = _method(path.stem)
    settings = SETTINGS.get(name, CNN_SETTINGS)
    assert cfg.model.type == 'HIRL' and cfg.model.algorithm == EXPECTED[name]
    assert cfg.model.num_clusters == settings['num_clusters']
    assert cfg.model.semantic_head.num_neg_path == settings['num_neg_path']
    assert cfg.model.semantic_head.num_mlp_layer == settings['num_mlp_layer']
    assert cfg.model.iter_wise_assignment == (name == 'swav_r50')
    hook_types = [h['type'] for h in cfg.custom_hooks]
    assert hook_types[-1] == 'HierarchicalClusteringHook'
    if name in ('swav_r50', 'simsiam_r50'):  # the method's own hook is kept
        assert len(hook_types) == 2
    if name in ('dino_vit-b16', 'ibot_vit-b16'):  # DINO's schedule hooks are kept
        assert len(hook_types) > 1
    init_default_scope(cfg.default_scope)
    # ViT-B/16 configs build on the meta device: shapes only, no memory for the weights.
    device = 'meta' if '_vit' in path.stem else 'cpu'
    with torch.device(device):
        model = MODELS.build(cfg.model)
    assert isinstance(model, HIRLMixin)
    assert type(model).__name__ == f'HIRL{EXPECTED[name]}'
    assert model.prototypes.num_clusters == settings['num_clusters']
    embedding, width = EMBEDDING[name]
    assert cfg.model.embedding == embedding and model.embedding == embedding
    if device == 'cpu':  # the buffer recording the space has no data on the meta device
        assert model.prototypes.embedding == embedding
    assert model.semantic_head.in_channels == model.prototypes.dim == width
    hook = HOOKS.build(cfg.custom_hooks[-1])
    assert hook.warmup_epochs == settings['warmup_epochs']


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_baseline_is_mmpretrains_config(name):
    cfg = Config.fromfile(str(CONFIGS / 'baselines' / f'{BASELINES[name]}.py'))
    assert cfg.model.type == EXPECTED[name]
    assert 'num_clusters' not in cfg.model


def test_demo_config_builds():
    cfg = Config.fromfile(str(CONFIGS / 'demo' / 'hirl_simclr_tiny-resnet18_fashion-mnist.py'))
    init_default_scope(cfg.default_scope)
    model = MODELS.build(cfg.model)
    assert model.prototypes.num_clusters == [100, 10, 5]
    assert model.embedding == 'neck' and model.prototypes.dim == 64  # SimCLR's projector
    assert cfg.custom_hooks[0]['warmup_epochs'] < cfg.train_cfg.max_epochs - 2  # >= 3 rounds


@pytest.mark.parametrize('name,algorithm,embedding,width', [
    ('hirl-simclr', 'SimCLR', 'neck', 64), ('hirl-simclr-backbone', 'SimCLR', 'backbone', 128),
    ('hirl-mocov2', 'MoCo', 'neck', 64)])
def test_study_configs_differ_from_their_baseline_only_by_hirl(name, algorithm, embedding,
                                                                width):
    cfg = Config.fromfile(str(CONFIGS / 'study' / f'{name}_tiny-resnet18_fashion-mnist.py'))
    base_name = algorithm.lower().replace('moco', 'mocov2')
    base = Config.fromfile(str(CONFIGS / 'study' / f'{base_name}_tiny-resnet18_fashion-mnist.py'))
    init_default_scope(cfg.default_scope)
    model = MODELS.build(cfg.model)
    assert model.embedding == embedding and model.prototypes.dim == width
    hirl_keys = {'type', 'algorithm', 'num_clusters', 'embedding', 'semantic_head'}
    assert {k: v for k, v in cfg.model.items() if k not in hirl_keys} == \
        {k: v for k, v in base.model.items() if k != 'type'}
    for key in ('train_dataloader', 'optim_wrapper', 'param_scheduler', 'train_cfg',
                'randomness'):
        assert cfg[key] == base[key], key


@pytest.mark.parametrize('path', sorted((CONFIGS / 'study').glob('*.py')) +
                         sorted((CONFIGS / 'demo').glob('*.py')), ids=lambda p: p.stem)
def test_small_configs_leave_the_distributed_backend_to_the_launcher(path):
    """Configs users copy set no back end: NCCL on GPUs, gloo on CPU (tools/train.py's
    launcher switches), never gloo DDP on GPUs."""
    cfg = Config.fromfile(str(path))
    assert cfg.env_cfg.dist_cfg.backend == 'nccl'  # mmpretrain's default_runtime
