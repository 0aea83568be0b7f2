"""The GPU check's training checks: the real HIRL-MoCo v2 config and its baseline on
synthetic images (baseline vs HIRL with both feature sources), the clustering hook per
k-means back end, and resume.

Configs are loaded and merged as ``tools/train.py`` does (its ``parse_args`` /
``merge_args``: ``--amp``, dataloader defaults, atomic checkpoints, collate scopes), then
changed in memory only: the training set becomes :class:`SyntheticImageDataset`, AMP runs
in bfloat16, and the sizes below apply (shipped configs are never edited).
"""
import functools
import gc
import importlib.util
import os
import re
import uuid
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config
from mmpretrain.utils import get_ori_model

from hirl_benchmarks.overhead_worker import train_timed
from hirl_mm.engine.hooks.clustering_inputs import IMAGENET_EXTRACT_PIPELINE
from .probes import (ClusteringProbe, StepTimerProbe, model_device, prototypes_state,
                     register_probes)
from .report import REPO, CheckSkipped
from .synthetic_images import register_synthetic_dataset

HIRL_CONFIG = 'configs/hirl/mocov2_r50.py'
# Where the HIRL config's header comment names its baseline: 'Baseline: <path>.py'.
BASELINE_COMMENT = re.compile(r'Baseline:\s*(\S+\.py)')
# What shrinks ResNet-50 MoCo v2 to a toy for --tiny (a thin ResNet-18, 16-d embeddings).
TINY_MOCO_OPTIONS = {
    'model.backbone.depth': 18, 'model.backbone.base_channels': 8,
    'model.backbone.stem_channels': 8, 'model.neck.in_channels': 64,
    'model.neck.hid_channels': 32, 'model.neck.out_channels': 16, 'model.queue_len': 64,
    'model.feat_dim': 16}
TINY_HIRL_OPTIONS = {'model.semantic_head.num_neg_path': 16}


@dataclass
class TrainSizes:
    """How big the training checks are.

    Attributes:
        num_images (int): Images in the synthetic training set.
        num_clusters (List[int]): HIRL's ``K_l`` (scaled down with the data).
        epochs (int): Epochs of a run (HIRL clusters before every epoch after the first).
        image_size (int): Size of the generated images.
        crop_size (int, optional): Crops of the pipelines; None keeps the config's (224).
        batch_size (int, optional): None keeps the config's (32 per GPU).
        num_workers (int): Training (and extraction) loader workers.
        skip_iters (int): Warm-up iterations per epoch left out of the rates.
        tiny_model (bool): Shrink the model (:data:`TINY_MOCO_OPTIONS`).
        options (Dict[str, Any]): Further config options of every run.
    """
    num_images: int
    num_clusters: List[int]
    epochs: int = 2
    image_size: int = 256
    crop_size: Optional[int] = None
    batch_size: Optional[int] = None
    num_workers: int = 8
    skip_iters: int = 10
    tiny_model: bool = False
    options: Dict[str, Any] = field(default_factory=dict)


def baseline_config(hirl_config: str = HIRL_CONFIG) -> str:
    """The baseline config named in the HIRL config's header comment.

    Raises:
        FileNotFoundError: The comment names none, or a path that does not exist.
    """
    with open(os.path.join(REPO, hirl_config)) as f:
        header = ' '.join(line.lstrip('# ').strip() for line in f
                          if line.startswith('#'))
    found = BASELINE_COMMENT.search(header)
    if found is None or not os.path.isfile(os.path.join(REPO, found.group(1))):
        raise FileNotFoundError(
            f'{hirl_config}: its header comment names no existing baseline config '
            f'("# Baseline: configs/....py"; found {found.group(1) if found else None!r}).')
    return found.group(1)


@functools.lru_cache(maxsize=None)
def _train_tool() -> ModuleType:
    """``tools/train.py`` as a module (its argument parsing and config merging)."""
    spec = importlib.util.spec_from_file_location('hirl_train_tool',
                                                  os.path.join(REPO, 'tools', 'train.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def scale_pipeline(pipeline: Any, size: int) -> Any:
    """Crops and resizes of a pipeline (nested: MultiView, RandomApply) set for ``size``
    px instead of 224, in place; returns ``pipeline``."""
    if isinstance(pipeline, (list, tuple)):
        for item in pipeline:
            scale_pipeline(item, size)
    elif isinstance(pipeline, dict):
        kind = pipeline.get('type')
        if kind == 'RandomResizedCrop':
            pipeline['scale'] = size
        elif kind == 'CenterCrop':
            pipeline['crop_size'] = size
        elif kind == 'ResizeEdge':
            pipeline['scale'] = round(size * 256 / 224)  # ImageNet's resize-then-crop ratio
        for value in pipeline.values():
            if isinstance(value, (list, tuple, dict)):
                scale_pipeline(value, size)
    return pipeline


def load_config(config: str, work_dir: str, sizes: TrainSizes, amp: bool, hirl: bool,
                options: Dict[str, Any], resume: bool = False) -> Config:
    """``config`` as ``tools/train.py`` would run it, on synthetic images at ``sizes``.

    Args:
        config (str): Config path, relative to the repository.
        work_dir (str): The run's work dir.
        sizes (TrainSizes): Data, schedule and model sizes.
        amp (bool): AMP (``--amp``) in bfloat16.
        hirl (bool): Whether it is a HIRL config (its clustering hook is ``custom_hooks.0``).
        options (Dict[str, Any]): Config options merged last (as ``--cfg-options``).
        resume (bool): Resume from the latest checkpoint in ``work_dir`` (``--resume``).

    Returns:
        Config: Ready for a Runner.
    """
    tool = _train_tool()
    args = tool.parse_args([os.path.join(REPO, config), '--work-dir', work_dir]
                           + (['--amp'] if amp else []) + (['--resume'] if resume else []))
    loaded = Config.fromfile(os.path.join(REPO, config))
    # Unformatted: yapf takes seconds per Runner, which logs and dumps its config (and
    # mmengine 0.10's fromfile drops format_python_code for non-lazy configs).
    loaded = Config(loaded.to_dict(), cfg_text=loaded.text, filename=loaded.filename,
                    format_python_code=False)
    cfg = tool.merge_args(loaded, args)
    loader = cfg.train_dataloader
    pipeline = loader.dataset.pipeline
    if sizes.crop_size:
        scale_pipeline(pipeline, sizes.crop_size)
    loader.dataset = dict(type=register_synthetic_dataset(), num_images=sizes.num_images,
                          image_size=sizes.image_size, pipeline=pipeline)
    loader.num_workers = sizes.num_workers
    loader.persistent_workers = sizes.num_workers > 0
    if sizes.batch_size:
        loader.batch_size = sizes.batch_size
    if amp:
        cfg.optim_wrapper.dtype = 'bfloat16'
    cfg.train_cfg.max_epochs = sizes.epochs
    merged = dict(TINY_MOCO_OPTIONS) if sizes.tiny_model else {}
    if hirl:
        merged.update({'model.num_clusters': list(sizes.num_clusters),
                       'custom_hooks.0.warmup_epochs': 1})
        if sizes.tiny_model:
            merged.update(TINY_HIRL_OPTIONS)
        if sizes.crop_size:
            merged['custom_hooks.0.extract_pipeline'] = scale_pipeline(
                [dict(t) for t in IMAGENET_EXTRACT_PIPELINE], sizes.crop_size)
    merged.update(sizes.options)
    merged.update(options)
    cfg.merge_from_dict(merged)
    # A logger of its own per run (mmengine names them by the second they start in).
    cfg.experiment_name = f'gpu_check_{uuid.uuid4().hex[:12]}'
    return cfg


def train(cfg: Config, hirl: bool) -> Tuple[Any, Dict[str, Any]]:
    """Train ``cfg`` with the probes; returns the runner and the run's measurements.

    Returns:
        tuple: The Runner and ``dict(result=<train_timed's>, steps=<per-iteration
        records>, peak_bytes=<peak CUDA memory above the start, or None>)``.
    """
    cuda = torch.cuda.is_available()
    gc.collect()  # the previous run's runner (its memory, its loader workers) goes first
    if cuda:  # and the peak counts this run only
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    start_bytes = torch.cuda.memory_allocated() if cuda else 0
    step_probe, clustering_probe = register_probes()
    probes = [step_probe] + ([clustering_probe] if hirl else [])
    runner, result = train_timed(cfg, cfg.work_dir, seed=0, extra_hooks=probes)
    (steps, ) = [h for h in runner.hooks if isinstance(h, StepTimerProbe)]
    peak = torch.cuda.max_memory_allocated() - start_bytes if cuda else None
    return runner, dict(result=result, steps=steps.records, peak_bytes=peak)


def final_loss(runner) -> float:
    """The last logged training loss; raises if it is not finite."""
    loss = float(runner.message_hub.get_scalar('train/loss').current())
    if not torch.isfinite(torch.tensor(loss)):
        raise FloatingPointError(f'the training loss is {loss}')
    return loss


def _probe(runner) -> ClusteringProbe:
    (probe, ) = [h for h in runner.hooks if isinstance(h, ClusteringProbe)]
    return probe


def run_summary(run: Dict[str, Any], skip_iters: int, from_epoch: int) -> Dict[str, float]:
    """Rates of a run's training steps (warm-up iterations of each epoch left out).

    Returns:
        Dict[str, float]: ``images_per_s`` (steps only), ``images_per_s_hirl_epochs``
        (epochs from ``from_epoch``: HIRL's semantic loss runs), ``images_per_s_wall``
        (steps and waiting for data), ``iterations``, ``extract_s`` / ``cluster_s`` (the
        clustering rounds), ``peak_mib`` (CUDA only).
    """
    timed = [r for r in run['steps'] if r['index'] >= skip_iters]
    late = [r for r in timed if r['epoch'] >= from_epoch]

    def rate(records: List[Dict], with_data: bool = False) -> float:
        seconds = sum(r['step'] + (r['data'] if with_data else 0.) for r in records)
        return sum(r['images'] for r in records) / max(seconds, 1e-9)

    records = run['result']['records']
    summary = dict(iterations=float(len(run['steps'])), images_per_s=rate(timed),
                   images_per_s_hirl_epochs=rate(late), images_per_s_wall=rate(timed, True),
                   extract_s=sum(r['extract'] for r in records),
                   cluster_s=sum(r['cluster'] for r in records))
    if run['peak_bytes'] is not None:
        summary['peak_mib'] = run['peak_bytes'] / 2**20
    return summary


def training_check(sizes: TrainSizes, amp: bool, work_root: str) -> Dict[str, Any]:
    """Baseline, HIRL with the extraction pass and HIRL with the training-fed bank, one
    after the other on the same synthetic data and schedule."""
    runs = [('baseline', 'baseline', baseline_config(), False, {}),
            ('hirl', 'HIRL (extraction)', HIRL_CONFIG, True, {}),
            ('hirl_bank', 'HIRL (feature bank)', HIRL_CONFIG, True,
             {'custom_hooks.0.feature_bank': True})]
    figures: Dict[str, float] = {}
    rows, summaries = [], {}
    info = {'configs': f'{HIRL_CONFIG} against {runs[0][2]}',
            'amp': 'AmpOptimWrapper, bfloat16' if amp else
                   'skipped: AMP (bfloat16 autocast) and peak GPU memory need CUDA'}
    for key, name, config, hirl, options in runs:
        cfg = load_config(config, os.path.join(work_root, key), sizes, amp, hirl,
                          dict(options, **{'default_hooks.checkpoint': None}))
        runner, run = train(cfg, hirl)
        summary = run_summary(run, sizes.skip_iters, from_epoch=1)
        summary['final_loss'] = final_loss(runner)
        if hirl:
            bank_read = _probe(runner).bank_current.get(1)
            if bank_read is not bool(options):
                raise AssertionError(f'{name}: the round before epoch 1 '
                                     f'{"read" if bank_read else "did not read"} the bank')
            summary['clustering_rounds'] = float(
                get_ori_model(runner.model).prototypes.num_updates)
        summaries[key] = summary
        figures.update({f'{key}.{k}': v for k, v in summary.items()})
        rows.append([name, int(summary['iterations']), summary['images_per_s'],
                     summary['images_per_s_hirl_epochs'], summary['images_per_s_wall'],
                     summary.get('peak_mib', 'n/a'), summary['extract_s'],
                     summary['cluster_s'], summary['final_loss']])
        del runner  # freed (train() collects) before the next run measures its peak
    base = summaries['baseline']['images_per_s_hirl_epochs']
    for key in ('hirl', 'hirl_bank'):
        figures[f'{key}.step_time_vs_baseline'] = base / summaries[key]['images_per_s_hirl_epochs']
    info['data'] = (f'{sizes.num_images} synthetic {sizes.image_size} px images, crops '
                    f'{sizes.crop_size or 224} px, {sizes.epochs} epochs, HIRL K='
                    f'{sizes.num_clusters} clustered before epoch 2; rates leave out the '
                    f'first {sizes.skip_iters} iterations of each epoch')
    info['step time vs baseline (epoch 2)'] = ', '.join(
        f'{k} {figures[f"{k}.step_time_vs_baseline"]:.3f}x' for k in ('hirl', 'hirl_bank'))
    return dict(figures=figures, info=info, tables=[dict(
        title='Training steps (images/s of forward + backward + update; "HIRL epochs": '
              'epoch 2, with the semantic loss; wall: with waiting for data)',
        header=['run', 'iterations', 'images/s', 'images/s HIRL epochs', 'images/s wall',
                'peak MiB', 'extract s', 'cluster s', 'final loss'], rows=rows)])


def hook_check(backend: str, sizes: TrainSizes, amp: bool, work_root: str,
               device: torch.device) -> Dict[str, Any]:
    """A one-epoch HIRL run that clusters before its first epoch with ``backend``; the
    prototypes must be on the model's device."""
    if backend == 'faiss':
        from .clustering import faiss_gpu_reason
        reason = faiss_gpu_reason(device)
        if reason:
            raise CheckSkipped(reason)
    options = {'custom_hooks.0.clusterer.backend': backend, 'custom_hooks.0.warmup_epochs': 0,
               'default_hooks.checkpoint': None}
    runner, run = train(load_config(HIRL_CONFIG, os.path.join(work_root, f'hook_{backend}'),
                                    sizes, amp, True, options), hirl=True)
    prototypes = get_ori_model(runner.model).prototypes
    where, model_at = prototypes.centroids[0].device, model_device(runner)
    if not prototypes.ready or where != model_at:
        raise AssertionError(f'prototypes ready={prototypes.ready} on {where}, model on '
                             f'{model_at}')
    result = prototypes.as_result()
    non_empty = [int((result.cluster_sizes(l) > 0).sum()) for l in range(result.num_levels)]
    records = run['result']['records']
    figures = dict(extract_s=sum(r['extract'] for r in records),
                   cluster_s=sum(r['cluster'] for r in records), final_loss=final_loss(runner),
                   **{f'non_empty_level{l}': float(n) for l, n in enumerate(non_empty)})
    info = dict(backend=backend, prototypes_device=str(where), model_device=str(model_at),
                num_clusters=str(prototypes.num_clusters))
    if backend == 'faiss' and device.type != 'cuda':
        info['faiss-gpu'] = 'skipped: needs CUDA (CPU faiss ran the same hook path)'
    return dict(figures=figures, info=info)


def resume_check(sizes: TrainSizes, amp: bool, work_root: str) -> Dict[str, Any]:
    """HIRL with the feature bank to an epoch-2 checkpoint, then resumed for epoch 3:
    the prototypes are restored, the first round after the resume extracts (the bank is
    not checkpointed) and training continues with a finite loss."""
    work_dir = os.path.join(work_root, 'resume')
    options = {'custom_hooks.0.feature_bank': True, 'default_hooks.checkpoint.interval': 1}
    runner, _ = train(load_config(HIRL_CONFIG, work_dir, sizes, amp, True, options), True)
    saved = prototypes_state(get_ori_model(runner.model).prototypes)
    del runner
    resumed_sizes = replace(sizes, epochs=sizes.epochs + 1)
    cfg = load_config(HIRL_CONFIG, work_dir, resumed_sizes, amp, True, options, resume=True)
    runner, run = train(cfg, hirl=True)
    probe = _probe(runner)
    restored = probe.resumed_state is not None and saved.keys() == probe.resumed_state.keys() \
        and all(torch.equal(saved[k], probe.resumed_state[k]) for k in saved)
    prototypes = get_ori_model(runner.model).prototypes
    checks = {'prototypes restored from the checkpoint': restored,
              f'round before epoch {sizes.epochs + 1} extracted (bank not checkpointed)':
                  probe.bank_current.get(sizes.epochs) is False,
              f'trained to epoch {sizes.epochs + 1}': runner.epoch == sizes.epochs + 1,
              'prototypes on the model\'s device':
                  prototypes.centroids[0].device == model_device(runner)}
    failed = [name for name, ok in checks.items() if not ok]
    if failed:
        raise AssertionError(f'resume: {failed} not as expected')
    figures = dict(iterations_after_resume=float(len(run['steps'])),
                   clustering_rounds=float(prototypes.num_updates), final_loss=final_loss(runner))
    return dict(figures=figures, info={k: 'yes' for k in checks})
