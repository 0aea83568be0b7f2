"""Fast checks of ``tools/analysis_tools/benchmark_hirl.py`` at toy sizes.

The loss workers normally run in fresh subprocesses (to measure memory in isolation); here
they run in-process so that the test takes seconds. One test (``slow``) goes through the
real subprocess path.
"""
import argparse
import contextlib
import importlib
import importlib.util
import io
import json
from pathlib import Path

import pytest
from tiny_setup import needs_fashion_mnist

SCRIPT = Path(__file__).parents[2] / 'tools' / 'analysis_tools' / 'benchmark_hirl.py'
spec = importlib.util.spec_from_file_location('benchmark_hirl', SCRIPT)
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
# The measurement modules next to the script (loading it put its folder on sys.path).
bank = importlib.import_module('hirl_benchmarks.feature_bank')
heads = importlib.import_module('hirl_benchmarks.heads')
measure = importlib.import_module('hirl_benchmarks.measure')

TOY = ['--num-images', '4', '--num-neg-path', '8', '--num-clusters', '12', '6', '3',
       '--warmup', '0', '--repeats', '2', '--embedding-dims', '8', '16']


def _in_process_variant(variant: str, args: argparse.Namespace, dim=None) -> dict:
    """``run_variant`` without the subprocess: run the worker here, parse its line."""
    worker_args = argparse.Namespace(**vars(args))
    worker_args.worker = variant
    worker_args.dim = args.dim if dim is None else dim
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        bench.run_worker(worker_args)
    (line, ) = [l for l in out.getvalue().splitlines() if l.startswith(measure.WORKER_TAG)]
    return json.loads(line[len(measure.WORKER_TAG):])


def test_bank_arithmetic_imagenet():
    for dim in (128, 2048):
        r = bank.bank_bytes(1281167, dim)
        assert r['bank'] == 1281167 * dim * 4
        assert r['peak'] == 2 * 1281167 * dim * 4
    assert bank.bank_bytes(1281167, 128)['bank'] == 655_957_504
    assert bank.IMAGENET_1K_TRAIN_IMAGES == 1281167


def test_bank_section_prints_gb(capsys):
    args = bench.parse_args(['--only', 'bank'])
    results = bench.benchmark_bank(args)
    out = capsys.readouterr().out
    assert set(results) == {128, 2048}
    assert 'COMPUTED' in out and 'NOT measured' in out
    assert '655,957,504' in out and '0.66 GB' in out and '1.31 GB' in out
    assert '10,495,320,064' in out and '10.50 GB' in out and '20.99 GB' in out


def test_section_selection():
    assert bench.selected_sections(bench.parse_args([])) == list(bench.SECTIONS)
    args = bench.parse_args(['--only', 'bank,heads', 'kmeans-by-dim', '--skip-heads'])
    assert bench.selected_sections(args) == ['kmeans-by-dim', 'bank']
    args = bench.parse_args(['--skip-loss', '--skip-kmeans'])
    assert bench.selected_sections(args) == ['heads', 'kmeans-by-dim', 'kmeans-sharded',
                                             'step', 'overhead', 'bank']
    with pytest.raises(SystemExit):
        bench.parse_args(['--only', 'nope'])


def test_heads_section_at_toy_sizes(monkeypatch, capsys):
    monkeypatch.setattr(heads, 'run_variant', _in_process_variant)
    args = bench.parse_args(TOY + ['--only', 'heads'])
    results = bench.benchmark_heads(args)
    out = capsys.readouterr().out
    assert set(results) == {8, 16}
    for dim, r in results.items():
        # 3 MLPs of Linear(D, D, bias=False) - BN(D) - ReLU - Linear(D, D).
        assert r['num_params'] == 3 * ((dim * dim) + 2 * dim + (dim * dim + dim))
        assert len(r['times']) == 2 and all(t > 0 for t in r['times'])
        assert r['loss'] > 0 and r['grad_norm'] > 0
        assert isinstance(r['peak_bytes'], int)  # in-process: may be < 0
    assert 'INCLUDING the semantic heads' in out and 'ratio D=16 / D=8' in out


def test_loss_worker_variants_agree():
    args = bench.parse_args(TOY + ['--dim', '8'])
    ours, naive = (_in_process_variant(v, args) for v in ('ours', 'naive'))
    assert ours['loss'] == pytest.approx(naive['loss'], rel=1e-5)
    assert ours['grad_norm'] == pytest.approx(naive['grad_norm'], rel=1e-4)
    assert ours['num_params'] == 0


def test_kmeans_by_dim_at_toy_sizes(capsys):
    args = bench.parse_args(TOY + ['--kmeans-by-dim-points', '300',
                                   '--kmeans-by-dim-clusters', '20', '5',
                                   '--kmeans-by-dim-iters', '3',
                                   '--kmeans-by-dim-backend', 'torch'])
    results = bench.benchmark_kmeans_by_dim(args)
    out = capsys.readouterr().out
    assert set(results) == {8, 16}
    for r in results.values():
        assert r['seconds'] > 0 and r['backend'] == 'torch'
        assert len(r['non_empty']) == 2 and 0 < r['non_empty'][1] <= 5
    assert '1 restart(s)' in out and 'ratio D=16 / D=8' in out


@pytest.mark.slow
def test_main_runs_heads_in_subprocesses(capsys):
    argv = TOY + ['--only', 'heads', 'bank', '--bank-samples', '1000', '--embedding-dims', '8',
                  '--threads', '1']
    assert bench.main(argv) == 0  # one width: each worker process imports torch + mmpretrain
    out = capsys.readouterr().out
    assert 'INCLUDING the semantic heads' in out and f'{3 * 8 * (2 * 8 + 3):,}' in out
    assert '32,000' in out


def test_sharded_kmeans_bank_shards_reassemble_the_bank():
    import torch
    sharded = importlib.import_module('hirl_benchmarks.kmeans_sharded_worker')
    sharded.BLOCK_ROWS = 7  # several blocks at toy size
    full, idx = sharded.bank_rows(30, 4, 0, 0, 1, torch.device('cpu'))
    assert torch.equal(idx, torch.arange(30))
    torch.testing.assert_close(full.norm(dim=1), torch.ones(30))
    for world in (2, 3):
        for rank in range(world):
            rows, idx = sharded.bank_rows(30, 4, 0, rank, world, torch.device('cpu'))
            assert idx.tolist() == list(range(rank, 30, world))
            assert torch.equal(rows, full[idx])


def test_sharded_kmeans_partition_objective():
    import torch
    sharded = importlib.import_module('hirl_benchmarks.kmeans_sharded_worker')
    x = torch.randn(50, 3)
    assignment = torch.randint(4, (50, ))
    expected = sum(float(((x[assignment == c] - x[assignment == c].mean(0))**2).sum())
                   for c in range(4) if (assignment == c).any())
    assert abs(sharded.partition_objective(x, assignment, 4) - expected) < 1e-6 * expected


def test_sharded_section_is_selectable():
    args = bench.parse_args(['--only', 'kmeans-sharded', '--sharded-worlds', '2'])
    assert bench.selected_sections(args) == ['kmeans-sharded'] and args.sharded_worlds == [2]


def test_overhead_table_and_ratios(capsys):
    overhead = importlib.import_module('hirl_benchmarks.overhead')

    def epoch(n, total, steps, extract=0., cluster=0.):
        return dict(epoch=n, total=total, steps=steps, data=1., extract=extract,
                    cluster=cluster, other=total - steps - 1. - extract - cluster, images=100)

    baseline = dict(records=[epoch(1, 10., 8.), epoch(2, 10., 8.)], num_samples=100,
                    batch_size=10, num_clusters=None, embed_dim=None)
    hirl = dict(records=[epoch(1, 10., 8.), epoch(2, 14., 9., 1., 2.)], num_samples=100,
                batch_size=10, num_clusters=[10, 5], embed_dim=16)
    overhead.print_overhead(baseline, hirl)
    out = capsys.readouterr().out
    assert 'epochs with a clustering round : HIRL / baseline 1.40x (MISSES the 1.25x' in out
    assert 'all epochs                     : HIRL / baseline 1.20x (meets the 1.25x' in out
    assert 'warm-up epochs (no round)      : HIRL / baseline 1.00x' in out
    # Per image: 80 ms baseline step, 90 ms HIRL step; extraction 10 ms = 0.12x a step.
    assert 'baseline training step 80.000; HIRL training step' in out
    assert '90.000 (1.12x; MISSES the 1.03x target)' in out
    assert 'extraction 1.00 s (10.000 ms / image, 0.12x' in out
    bank = dict(hirl, records=[epoch(1, 10., 8.), epoch(2, 10.3, 9., 0.1, 0.2)])
    overhead.print_overhead(baseline, hirl, bank)
    out = capsys.readouterr().out
    assert 'HIRL with the training-fed feature bank' in out
    assert 'epochs with a clustering round : HIRL (bank) / baseline 1.03x (meets the 1.05x' in out
    assert 'reading it (and embedding the samples no step saw) 0.10 s, clustering 0.20 s' in out


@pytest.mark.slow
@needs_fashion_mnist()
def test_overhead_section_trains_both_configs(capsys):
    """The real path: the demo config and its baseline, 2 epochs on 60 images each."""
    argv = ['--only', 'overhead', '--overhead-options', 'train_cfg.max_epochs=2',
            'train_dataloader.dataset.num_per_class=6', 'train_dataloader.batch_size=20',
            'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
            '--overhead-hirl-options', 'model.num_clusters=[12,6,3]',
            'custom_hooks.0.warmup_epochs=1']
    args = bench.parse_args(argv)
    runs = bench.benchmark_overhead(args)
    out = capsys.readouterr().out
    base, hirl, bank = runs['baseline'], runs['hirl'], runs['bank']
    assert base['num_samples'] == hirl['num_samples'] == bank['num_samples'] == 60
    # With the bank, the round before epoch 2 reads what epoch 1's steps wrote.
    assert bank['records'][0]['extract'] == 0 and bank['records'][1]['cluster'] > 0
    assert 'HIRL (bank) / baseline' in out
    assert hirl['num_clusters'] == [12, 6, 3] and base['num_clusters'] is None
    assert [r['images'] for r in base['records']] == [60, 60]
    # Warm-up epoch 1 has no round; epoch 2 follows one.
    assert hirl['records'][0]['extract'] == 0 and hirl['records'][1]['extract'] > 0
    assert all(r['extract'] == r['cluster'] == 0 for r in base['records'])
    assert 'epochs with a clustering round : HIRL / baseline' in out
    assert '60 training images, batch 20; HIRL clusters [12, 6, 3] in 64-d' in out


@needs_fashion_mnist()
def test_step_section_profiles_hirls_step(capsys):
    """The real path at toy size: both demo models, one real batch of 8, 2 steps each."""
    args = bench.parse_args(['--only', 'step', '--step-repeats', '2', '--step-warmup', '1',
                             '--step-options', 'train_dataloader.batch_size=8',
                             'train_dataloader.dataset.num_per_class=2'])
    result = bench.benchmark_step(args)
    out = capsys.readouterr().out
    assert 'batch 8, 2 steps each' in out and 'HIRL / baseline' in out
    assert result['baseline_ms'] > 0 and result['hirl_ms'] > 0
    # Every profiled part ran inside HIRL's steps (the semantic loss is on: random
    # prototypes fill the hierarchy).
    for label in ('locate the view in the recorded calls', 'draw the negative paths',
                  'semantic heads (forward)', 'semantic path loss (forward)'):
        assert result[label] > 0, label
