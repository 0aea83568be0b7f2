"""What a ``--worker`` subprocess of the HIRL benchmark runs: one variant, one JSON line."""
import argparse
import json

import torch

from .heads import heads_case
from .measure import WORKER_TAG, measure_case
from .semantic_loss import loss_case


def run_worker(args: argparse.Namespace) -> None:
    """Measure one variant (this process runs nothing else) and print a JSON line.

    Args:
        args (argparse.Namespace): The benchmark's arguments; ``args.worker`` is
            ``'ours'``, ``'naive'``, ``'heads'`` (a loss variant) or ``'kmeans-single'`` /
            ``'kmeans-sharded'`` (a process of the sharded k-means section) or ``'overhead'``
            (one timed training).
    """
    if args.worker == 'overhead':
        from .overhead_worker import run_overhead_training
        run_overhead_training(args)
        return
    if args.worker.startswith('kmeans-'):
        from .kmeans_sharded_worker import run_sharded, run_single
        (run_single if args.worker == 'kmeans-single' else run_sharded)(args)
        return
    device = torch.device(args.device)
    case = (heads_case(args.num_mlp_layer, args.seed, device) if args.worker == 'heads'
            else loss_case(args.worker, args.seed, device))
    result = measure_case(case, device, args.num_images, args.num_neg_path,
                          args.num_clusters, args.dim, args.warmup, args.repeats)
    print(WORKER_TAG + json.dumps(result), flush=True)
