"""The training-fed feature bank through mmengine's Runner (one process, CPU).

The bank must hold, after an epoch, exactly the clustering encoder's embedding of each
sample from that epoch's training forward: MoCo's key encoder on the key view (computed
here again, directly, from the recorded key batch), SimCLR's online neck on the first view
(read off an independent hook on the neck). Samples no step saw (``drop_last``) are
embedded with the extraction pipeline; a resumed run extracts once.
"""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner
from mmpretrain.utils import get_ori_model
from torch import nn

import hirl_mm.engine.hooks.hierarchical_clustering_hook as hook_module
from hirl_mm.engine.hooks import HierarchicalClusteringHook
from tiny_setup import hirl_config
from toy_training import read_log

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures('single_thread')]


class DirectRows(Hook):
    """Computes, step by step, what the bank should hold, without HIRL's own code."""

    priority = 'LOWEST'

    def __init__(self, algorithm: str) -> None:
        self.algorithm = algorithm
        self.expected, self.banks, self._inputs, self._handle = {}, {}, [], None

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        model = get_ori_model(runner.model)
        self._inputs.clear()
        module = model.encoder_k if self.algorithm == "MoCo" else model.neck
        self._handle = module.register_forward_hook(
            lambda _m, args, out: self._inputs.append((args[0], out)))

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._handle.remove()
        model = get_ori_model(runner.model)
        (args, out), = self._inputs
        if self.algorithm == 'MoCo':
            # The key encoder after this step's EMA update (it updates before embedding
            # the keys), in train mode as in the step: the same rows, computed again.
            encoder = copy.deepcopy(model.encoder_k.module).train()
            with torch.no_grad():
                rows = encoder(args)[0]
                # MoCo shuffles its keys before the key encoder: put the rows back in
                # the batch's order by matching the images with the preprocessed view.
                keys = model.data_preprocessor(data_batch, True)['inputs'][1].flatten(1)
                same = (args.flatten(1)[None] == keys[:, None]).all(-1)
                assert bool((same.sum(1) == 1).all())
                rows = rows[same.float().argmax(1)]
        else:  # SimCLR interleaves the views: rows 0, 2, 4, ... are the first view
            rows = out[0][0::2]
        idx = [int(s.sample_idx) for s in data_batch['data_samples']]
        for i, row in zip(idx, nn.functional.normalize(rows.detach(), dim=1)):
            self.expected.setdefault(runner.epoch, {})[i] = row

    def after_train_epoch(self, runner) -> None:
        hook = next(h for h in runner.hooks if isinstance(h, HierarchicalClusteringHook))
        if hook._bank.epoch == runner.epoch:
            shard = hook._bank.shard(40)
            self.banks[runner.epoch] = (shard, dict(zip(shard.sample_idx.tolist(),
                                                        shard.features)))


def _config(algorithm, image_folder, work_dir, max_epochs, batch_size=8):
    cfg = hirl_config(algorithm, image_folder, work_dir, max_epochs=max_epochs,
                      warmup_epochs=1, batch_size=batch_size)
    cfg['custom_hooks'][0]['feature_bank'] = True
    cfg['log_level'] = 'INFO'  # the round's source is an INFO line
    return cfg


@pytest.mark.parametrize('algorithm', ['MoCo', 'SimCLR'])
def test_bank_holds_the_clustering_encoders_rows_of_the_epoch(algorithm, image_folder,
                                                              tmp_path, monkeypatch):
    extracted = []
    monkeypatch.setattr(HierarchicalClusteringHook, 'extract',
                        lambda self, runner: extracted.append(runner.epoch))
    cfg = _config(algorithm, image_folder, tmp_path, max_epochs=3)
    direct = DirectRows(algorithm)
    runner = Runner.from_cfg(Config(cfg))
    runner.register_hook(direct)
    runner.train()
    assert extracted == []  # both rounds (before epochs 1 and 2) read the bank
    assert sorted(direct.banks) == [0, 1]  # the epochs before a round; not the last one
    for epoch, (shard, rows) in direct.banks.items():
        assert shard.missing.numel() == 0 and sorted(rows) == list(range(40))
        for idx, row in direct.expected[epoch].items():
            torch.testing.assert_close(rows[idx], row, rtol=1e-5, atol=1e-6)
    prototypes = get_ori_model(runner.model).prototypes
    assert int(prototypes.num_updates) == 2 and prototypes.num_samples == 40
    assert 'samples no step saw embedded' in read_log(runner)


def test_samples_no_step_saw_are_extracted(image_folder, tmp_path, monkeypatch):
    rounds = []
    original = hook_module.bank_round_rows

    def spy(bank, model, loader):
        out = original(bank, model, loader)
        rounds.append((len(bank), out))
        return out

    monkeypatch.setattr(hook_module, 'bank_round_rows', spy)
    # 40 images, batch 16, drop_last: 32 seen per epoch, 8 embedded by the extraction.
    runner = Runner.from_cfg(Config(_config('SimCLR', image_folder, tmp_path, max_epochs=2,
                                            batch_size=16)))
    runner.train()
    (bank_rows, (features, sample_idx, num_missing)), = rounds
    assert bank_rows == 32 and num_missing == 8
    assert sorted(sample_idx.tolist()) == list(range(40)) and features.shape[0] == 40
    torch.testing.assert_close(features.norm(dim=1), torch.ones(40))


def test_resumed_run_extracts_once(image_folder, tmp_path, monkeypatch):
    extracted = []
    original = HierarchicalClusteringHook.extract

    def spy(self, runner):
        extracted.append(runner.epoch)
        return original(self, runner)

    monkeypatch.setattr(HierarchicalClusteringHook, 'extract', spy)
    Runner.from_cfg(Config(_config('SimCLR', image_folder, tmp_path, max_epochs=2))).train()
    assert extracted == []
    cfg = _config('SimCLR', image_folder, tmp_path, max_epochs=3)
    cfg.update(resume=True, load_from=str(tmp_path / 'epoch_2.pth'))
    resumed = Runner.from_cfg(Config(cfg))
    resumed.train()
    # The bank is not checkpointed: the round before epoch 2 extracted, once.
    assert extracted == [2]
    assert 'the bank is not checkpointed); extracting once' in read_log(resumed)
    assert int(get_ori_model(resumed.model).prototypes.num_updates) == 2
