"""EpochTimerHook: every second of a real HIRL training lands in exactly one epoch's split."""
import time

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from hirl_mm.engine.hooks import EpochTimerHook
from hirl_mm.engine.hooks.epoch_timer_hook import _batch_size
from tiny_setup import hirl_config
from toy_training import read_log

PARTS = ('steps', 'data', 'extract', 'cluster', 'other')


def test_a_hirl_training_is_split_epoch_by_epoch(image_folder, tmp_path):
    # 40 images, batch 8 (5 iterations an epoch); a clustering round before epochs 2 and 3.
    cfg = hirl_config('SimCLR', image_folder, tmp_path, max_epochs=3, warmup_epochs=1)
    cfg['custom_hooks'].append(dict(type='EpochTimerHook'))
    cfg['log_level'] = 'INFO'
    runner = Runner.from_cfg(Config(cfg))
    before = time.perf_counter()
    runner.train()
    after = time.perf_counter()
    (timer, ) = [h for h in runner.hooks if isinstance(h, EpochTimerHook)]
    records = timer.records
    assert [r['epoch'] for r in records] == [1, 2, 3]
    assert [r['images'] for r in records] == [40, 40, 40]
    # The windows tile the training: each starts where the previous one ended, all inside
    # runner.train() (which also builds the loop and runs the pipeline checks before them).
    assert before <= records[0]['start'] and records[-1]['end'] <= after
    assert all(a['end'] == b['start'] for a, b in zip(records, records[1:]))
    assert all(r['total'] == r['end'] - r['start'] for r in records)
    for r in records:
        assert all(r[part] >= 0 for part in PARTS) and r['steps'] > 0
        assert sum(r[part] for part in PARTS) == pytest.approx(r['total'], rel=1e-6)
    # The round's times are the clustering hook's own, only in the epochs it ran before.
    assert records[0]['extract'] == records[0]['cluster'] == 0
    assert all(r['extract'] > 0 and r['cluster'] > 0 for r in records[1:])
    last = runner.message_hub.get_info('hirl/last_round')
    assert records[2]['extract'] == last['extract_seconds']
    assert records[2]['cluster'] == last['cluster_seconds']
    log = read_log(runner)
    assert 'Epoch 1 took' in log and '(40 images)' in log
    assert log.count('+ HIRL round') == 2


def test_batch_size_of_collated_batches():
    views = [torch.zeros(5, 3, 8, 8), torch.zeros(5, 3, 8, 8)]
    assert _batch_size(dict(inputs=views)) == 5  # multi-view: one tensor per view
    assert _batch_size(dict(inputs=torch.zeros(3, 3, 8, 8))) == 3
    assert _batch_size(dict(inputs=[[1, 2]] * 4, data_samples=[None] * 4)) == 4
    assert _batch_size(None) == 0
