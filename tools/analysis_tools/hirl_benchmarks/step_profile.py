"""Section ``step``: HIRL's training step against its baseline's, and where the difference goes.

Both models are built from their configs (by default ``make demo``'s HIRL config and the
SimCLR config it adds HIRL to) and trained on the same real batch of the config's training
set, one step of each in turn (interleaved, after warm-up steps, median of the repeats):
forward, backward and the optimizer update, as ``Runner`` runs them. HIRL's prototypes are
filled with a random hierarchy of the config's sizes, so the semantic loss runs in full.

The profile splits HIRL's extra time into the parts it runs in its forward, each timed
by a wrapper around the function during the HIRL steps: locating the first view's rows
among the recorded backbone / neck calls, looking up the semantic paths, drawing the
negative paths, the semantic heads and the loss; the rest of the difference is their
backward and the optimizer's work on the heads' parameters.
"""
import argparse
import statistics
import time
from contextlib import ExitStack, contextmanager
from typing import Callable, Dict, Iterator, List, Tuple

import torch

from .measure import synchronize
from .overhead_worker import parse_options
from .report import print_header

# The wrapped functions: (label, module path, owner attribute, function name).
PARTS = (
    ('locate the view in the recorded calls',
     'hirl_mm.models.utils.embedding_encoder', 'EmbeddingEncoder', 'find_view_embedding'),
    ('look up the semantic paths',
     'hirl_mm.models.utils.hierarchical_prototypes', 'HierarchicalPrototypes', 'paths'),
    ('draw the negative paths',
     'hirl_mm.models.heads.semantic_path_head', None, 'sample_negative_paths'),
    ('semantic heads (forward)',
     'hirl_mm.models.heads.semantic_path_head', 'SemanticPathHead', 'forward'),
    ('semantic path loss (forward)',
     'hirl_mm.models.losses.semantic_path_loss', 'SemanticPathLoss', 'forward'),
)


def _build(config: str, options: List[str], device: torch.device) -> Tuple:
    """Model, optimizer wrapper, config and one real training batch of ``config``."""
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner

    import hirl_mm  # noqa: F401  (registers the components)
    from hirl_mm.registry import MODELS

    cfg = Config.fromfile(config)
    cfg.merge_from_dict(parse_options(options))
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).to(device)
    model.init_weights()
    model.train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    loader_cfg = dict(cfg.train_dataloader, num_workers=0, persistent_workers=False)
    loader = Runner.build_dataloader(loader_cfg, seed=0)
    return model, optim_wrapper, next(iter(loader)), len(loader.dataset)


def fill_random_prototypes(prototypes: torch.nn.Module, num_samples: int,
                           device: torch.device) -> None:
    """A random hierarchy of the prototypes' sizes over ``num_samples`` samples."""
    from .synthetic import random_hierarchy
    generator = torch.Generator().manual_seed(0)
    centroids, parents = random_hierarchy(prototypes.num_clusters, prototypes.dim, device)
    level0 = torch.randint(prototypes.num_clusters[0], (num_samples, ),
                           generator=generator).to(device)
    im2cluster = [level0]
    for parent in parents:
        im2cluster.append(parent[im2cluster[-1]])
    prototypes.update(centroids, parents, im2cluster)


@contextmanager
def timed_parts(device: torch.device) -> Iterator[Dict[str, float]]:
    """Wrap the functions of :data:`PARTS`; yields their accumulated seconds by label."""
    import importlib
    seconds = {label: 0.0 for label, *_ in PARTS}

    def wrap(label: str, fn: Callable) -> Callable:
        def wrapper(*args, **kwargs):
            synchronize(device)
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            synchronize(device)
            seconds[label] += time.perf_counter() - start
            return out
        return wrapper

    with ExitStack() as stack:
        for label, module_name, owner_name, name in PARTS:
            module = importlib.import_module(module_name)
            owner = getattr(module, owner_name) if owner_name else module
            original = getattr(owner, name)
            setattr(owner, name, wrap(label, original))
            stack.callback(setattr, owner, name, original)
        yield seconds


def _step_seconds(model, optim_wrapper, batch, device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    model.train_step(batch, optim_wrapper)
    synchronize(device)
    return time.perf_counter() - start


def benchmark_step(args: argparse.Namespace) -> Dict[str, float]:
    """Time the baseline's and HIRL's training steps in turn and profile HIRL's extra.

    Returns:
        Dict[str, float]: Median milliseconds of each step, their ratio and the mean
        milliseconds per step of every profiled part.
    """
    device = torch.device(args.device)
    options = list(args.step_options or [])
    base = _build(args.step_baseline, options, device)
    hirl = _build(args.step_config, options, device)
    fill_random_prototypes(hirl[0].prototypes, hirl[3], device)
    batch_size = len(hirl[2]['data_samples'])
    print(f'== HIRL training step vs its baseline: {args.step_config} against '
          f'{args.step_baseline}, batch {batch_size}, {args.step_repeats} steps each '
          f'(interleaved, after {args.step_warmup} warm-up steps), {device} ==')
    for _ in range(args.step_warmup):
        _step_seconds(*base[:3], device)
        _step_seconds(*hirl[:3], device)
    times = {'baseline': [], 'hirl': []}
    with timed_parts(device) as parts:
        for _ in range(args.step_repeats):
            # Parts accumulate during HIRL's steps only (the baseline calls none of them).
            times['baseline'].append(_step_seconds(*base[:3], device))
            times['hirl'].append(_step_seconds(*hirl[:3], device))
    base_ms = statistics.median(times['baseline']) * 1e3
    hirl_ms = statistics.median(times['hirl']) * 1e3
    result = dict(baseline_ms=base_ms, hirl_ms=hirl_ms, ratio=hirl_ms / base_ms)
    print(f'baseline step {base_ms:.1f} ms, HIRL step {hirl_ms:.1f} ms (median): '
          f'HIRL / baseline {hirl_ms / base_ms:.3f}x')
    title = "part of HIRL's step"
    print_header(f'{title:<42} {"ms / step":>10} {"of the step":>12}', 0)
    forward_ms = 0.0
    for label, total in parts.items():
        ms = total / args.step_repeats * 1e3
        forward_ms += ms
        result[label] = ms
        print(f'{label:<42} {ms:>10.2f} {ms / hirl_ms * 100:>11.1f}%')
    rest = hirl_ms - base_ms - forward_ms
    result['rest'] = rest
    print(f'{"the rest (their backward, optimizer, noise)":<42} {rest:>10.2f} '
          f'{rest / hirl_ms * 100:>11.1f}%')
    return result
