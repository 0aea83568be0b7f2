"""Tiny real trainings for the tests: a generated image folder and HIRL configs.

Images are small PNGs of four visually distinct classes, read back through mmpretrain's
``CustomDataset`` and ``LoadImageFromFile`` exactly as an ImageNet-style folder would be.
"""
import uuid
from pathlib import Path

import numpy as np
from PIL import Image

NUM_CLASSES = 4
IMG_SIZE = 32
EMBED_DIM = 64  # ResNet-18 with base_channels=8: 8 * 8 channels at stage 4
NECK_DIM = 16  # every toy neck's output width (the default 'neck' embedding)
CNN_ALGORITHMS = ('SimCLR', 'MoCo', 'SwAV', 'BYOL', 'SimSiam', 'BarlowTwins')


def make_image_folder(root: Path, per_class: int = 10, seed: int = 0) -> Path:
    """Write ``NUM_CLASSES * per_class`` PNGs into ``root/class_k/``; returns ``root``."""
    rng = np.random.default_rng(seed)
    for label in range(NUM_CLASSES):
        folder = root / f'class_{label}'
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = rng.integers(0, 60, size=(IMG_SIZE, IMG_SIZE, 3))
            # A class-specific coloured square at a class-specific place.
            y, x = (label // 2) * 16, (label % 2) * 16
            img[y:y + 16, x:x + 16, label % 3] += 180
            Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(folder / f'{i:03d}.png')
    return root


def _views(scale: int) -> list:
    return [dict(type='RandomResizedCrop', scale=scale, crop_ratio_range=(0.5, 1.0),
                 backend='pillow'),
            dict(type='RandomFlip', prob=0.5)]


def _method_cfg(algorithm: str) -> dict:
    """Neck / head / extra arguments of each wrapped algorithm at toy size."""
    # mmpretrain's necks default to SyncBN, which has no CPU implementation.
    bn = dict(type='BN1d')
    projector = dict(type='NonLinearNeck', in_channels=EMBED_DIM, hid_channels=32,
                     out_channels=NECK_DIM, num_layers=2, with_avg_pool=True, norm_cfg=bn)
    predictor = dict(type='NonLinearNeck', in_channels=16, hid_channels=16, out_channels=16,
                     num_layers=2, with_avg_pool=False, norm_cfg=bn)
    if algorithm == 'SimCLR':
        return dict(neck=projector, head=dict(type='ContrastiveHead',
                                              loss=dict(type='CrossEntropyLoss'),
                                              temperature=0.1))
    if algorithm == 'MoCo':
        return dict(queue_len=64, feat_dim=16, momentum=0.01,
                    neck=dict(type='MoCoV2Neck', in_channels=EMBED_DIM, hid_channels=32,
                              out_channels=NECK_DIM, with_avg_pool=True),  # no BN
                    head=dict(type='ContrastiveHead', loss=dict(type='CrossEntropyLoss'),
                              temperature=0.2))
    if algorithm == 'SwAV':
        return dict(neck=dict(type='SwAVNeck', in_channels=EMBED_DIM, hid_channels=32,
                              out_channels=NECK_DIM, with_avg_pool=True, norm_cfg=bn),
                    head=dict(type='SwAVHead',
                              loss=dict(type='SwAVLoss', feat_dim=16, num_crops=[2, 2],
                                        num_prototypes=8)))
    if algorithm in ('BYOL', 'SimSiam'):
        extra = dict(base_momentum=0.01) if algorithm == 'BYOL' else {}
        return dict(neck=projector, **extra,
                    head=dict(type='LatentPredictHead', predictor=predictor,
                              loss=dict(type='CosineSimilarityLoss')))
    if algorithm == 'BarlowTwins':
        return dict(neck=dict(projector, num_layers=3, with_last_bn=False),
                    head=dict(type='LatentCrossCorrelationHead', in_channels=NECK_DIM,
                              loss=dict(type='CrossCorrelationLoss')))
    raise ValueError(algorithm)


def hirl_config(algorithm: str, data_root: Path, work_dir: Path, max_epochs: int = 3,
                warmup_epochs: int = 1, batch_size: int = 8, num_clusters=(12, 6, 3),
                iter_wise_assignment: bool = False, seed: int = 0, embedding: str = 'neck',
                launcher: str = 'none', backend: str = 'torch',
                checkpoint_interval: int = 1) -> dict:
    """A complete mmengine config dict for a toy HIRL pre-training.

    Args:
        algorithm (str): Wrapped mmpretrain algorithm: SimCLR, MoCo, SwAV, BYOL, SimSiam,
            BarlowTwins.
        data_root (Path): Folder written by :func:`make_image_folder`.
        work_dir (Path): The runner's work dir.

    Returns:
        dict: Ready for ``Runner.from_cfg(Config(cfg))``.
    """
    if algorithm == 'SwAV':
        multiview = dict(type='MultiView', num_views=[2, 2],
                         transforms=[_views(IMG_SIZE), _views(IMG_SIZE // 2)])
    else:
        multiview = dict(type='MultiView', num_views=2, transforms=[_views(IMG_SIZE)])
    model = dict(
        type='HIRL', algorithm=algorithm,
        data_preprocessor=dict(type='SelfSupDataPreprocessor', mean=[60.0] * 3,
                               std=[60.0] * 3, to_rgb=True),
        backbone=dict(type='ResNet', depth=18, base_channels=8, stem_channels=8),
        num_clusters=list(num_clusters),
        embedding=embedding,  # the semantic head's in_channels is derived from it
        semantic_head=dict(type='SemanticPathHead', num_neg_path=16, num_mlp_layer=2),
        iter_wise_assignment=iter_wise_assignment,
        **_method_cfg(algorithm))
    return dict(
        default_scope='hirl_mm',
        work_dir=str(work_dir),
        model=model,
        train_dataloader=dict(
            batch_size=batch_size, num_workers=0, drop_last=True,
            sampler=dict(type='DefaultSampler', shuffle=True),
            collate_fn=dict(type='default_collate'),
            dataset=dict(type='CustomDataset', data_root=str(data_root), with_label=False,
                         pipeline=[dict(type='LoadImageFromFile'), multiview,
                                   dict(type='PackInputs')])),
        train_cfg=dict(type='EpochBasedTrainLoop', max_epochs=max_epochs),
        optim_wrapper=dict(type='OptimWrapper',
                           optimizer=dict(type='SGD', lr=0.05, momentum=0.9)),
        custom_hooks=[dict(
            type='HierarchicalClusteringHook', warmup_epochs=warmup_epochs, interval=1,
            extract_pipeline=[dict(type='LoadImageFromFile'), dict(type='PackInputs')],
            clusterer=dict(type='HierarchicalKMeans', backend=backend, num_iters=10,
                           num_redo=1, seed=0))],
        default_hooks=dict(
            logger=dict(type='LoggerHook', interval=1),
            checkpoint=dict(type='CheckpointHook', interval=checkpoint_interval)),
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        launcher=launcher,
        randomness=dict(seed=seed),
        log_level='WARNING',
        **_fresh_logger(launcher),
    )


def _fresh_logger(launcher: str) -> dict:
    """A unique ``experiment_name`` for one-process runs.

    mmengine names a Runner's logger after the second it was built in, so two Runners built
    within one second share a logger and the second writes into the first's log file. The
    ranks of a distributed run must agree on the name, so they keep mmengine's default.
    """
    return dict(experiment_name=f'tiny_{uuid.uuid4().hex}') if launcher == 'none' else {}


def shrunk_config(config: str, work_dir: Path, num_per_class: int = 5, batch_size: int = 8,
                  max_epochs: int = 3, warmup_epochs: int = 1):
    """A shipped Fashion-MNIST config (e.g. configs/study/hirl-dino_...) at toy size.

    Args:
        config (str): Path of the config, relative to the repository root.
        work_dir (Path): The runner's work dir.
        num_per_class (int): Training images per class.
        batch_size (int): Images per process and step.
        max_epochs (int): Epochs.
        warmup_epochs (int): HIRL's warm-up (clustering before every later epoch).

    Returns:
        Config: Ready for ``Runner.from_cfg``.
    """
    from mmengine.config import Config
    cfg = Config.fromfile(str(Path(__file__).parents[1] / config))
    cfg.work_dir = str(work_dir)
    loader = cfg.train_dataloader
    loader.dataset.num_per_class = num_per_class
    loader.update(batch_size=batch_size, num_workers=0, persistent_workers=False)
    cfg.train_cfg.max_epochs = max_epochs
    cfg.default_hooks.logger.interval = 1
    for hook in cfg.get('custom_hooks', []):
        if hook.type == 'HierarchicalClusteringHook':
            hook.warmup_epochs = warmup_epochs
            hook.extract_batch_size = 64
            hook.clusterer.num_redo = 1
    if 'num_clusters' in cfg.model:
        cfg.model.num_clusters = [12, 6, 3]
        cfg.model.semantic_head.num_neg_path = 8
    cfg.log_level = 'WARNING'
    cfg.update(_fresh_logger(cfg.get('launcher', 'none')))
    return cfg


FASHION_MNIST_ROOT = '/usr/share/datasets/fashion-mnist'


def needs_fashion_mnist():
    """A pytest skip marker for tests that read Debian's dataset-fashion-mnist."""
    import os.path as osp

    import pytest
    return pytest.mark.skipif(
        not osp.isfile(osp.join(FASHION_MNIST_ROOT, 'train-images-idx3-ubyte.gz')),
        reason='Debian package dataset-fashion-mnist is not installed')


def logged_scalars(work_dir: Path, key: str) -> list:
    """Values of ``key`` from the runner's JSON scalar logs under ``work_dir``, in order
    (runs resumed in the same work dir included, oldest first)."""
    import json
    logs = sorted(Path(work_dir).glob('*/vis_data/scalars.json'))
    assert logs, f'no scalar log under {work_dir}'
    values = []
    for log in logs:
        for line in log.read_text().splitlines():
            record = json.loads(line)
            if key in record:
                values.append(record[key])
    return values


# What a HIRL config adds to its baseline's model dict.
HIRL_MODEL_KEYS = frozenset({'type', 'algorithm', 'num_clusters', 'embedding', 'semantic_head',
                             'feature_source', 'iter_wise_assignment', 'momentum_buffers'})


def without_hirl_head_group(optim_wrapper: dict) -> dict:
    """An optim_wrapper config without what the ViT HIRL configs add to their baseline's:
    the fixed-decay constructor and its ``fixed_decay_groups`` (the semantic heads' group).
    """
    out = {k: v for k, v in optim_wrapper.items() if k != 'constructor'}
    paramwise = {k: v for k, v in (out.get('paramwise_cfg') or {}).items()
                 if k != 'fixed_decay_groups'}
    out.pop('paramwise_cfg', None)
    if paramwise:
        out['paramwise_cfg'] = paramwise
    return out
