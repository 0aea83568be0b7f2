"""One rank of the 2-process test (run by torch.distributed.run from test_distributed.py).

Trains a toy HIRL model (or a shipped config shrunk, e.g. HIRL-DINO's tiny ViT) with the
gloo back end, then saves what this rank holds: its prototype buffers and the sample
indices each extraction round received.
"""
import os
import sys
from pathlib import Path

import torch
from mmengine import dist
from mmengine.config import Config
from mmengine.runner import Runner
from mmpretrain.utils import get_ori_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hirl_mm.utils.feature_extraction as feature_extraction  # noqa: E402
from hirl_mm.utils.launch import setup_launcher  # noqa: E402
from tiny_setup import hirl_config, shrunk_config  # noqa: E402

algorithm, data_root, work_dir = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
received = []
place = feature_extraction.place_by_index


def recording_place(rows, indices, num_samples):
    received.append(indices.cpu().clone())
    return place(rows, indices, num_samples)


feature_extraction.place_by_index = recording_place
# HIRL_TEST_FEATURE_BANK=1: the clustering hook reads the training-fed bank; record, per
# round, the sample_idx of this rank's rows and the samples this rank trained on.
bank_mode = os.environ.get('HIRL_TEST_FEATURE_BANK') == '1'
bank_rounds, seen = [], {}
if bank_mode:
    import hirl_mm.engine.hooks.hierarchical_clustering_hook as hook_module
    from hirl_mm.clustering.feature_bank import FeatureBank
    original_rows, original_add = hook_module.bank_round_rows, FeatureBank.add

    def recording_rows(bank, model, loader):
        rows = original_rows(bank, model, loader)
        bank_rounds.append(dict(epoch=bank.epoch, sample_idx=rows[1].cpu().clone(),
                                num_missing=rows[2], rows=rows[0].shape[0]))
        return rows

    def recording_add(bank, sample_idx, rows):
        seen.setdefault(bank.epoch, []).extend(sample_idx.tolist())
        return original_add(bank, sample_idx, rows)

    hook_module.bank_round_rows = recording_rows
    FeatureBank.add = recording_add
if algorithm.endswith('.py'):  # a shipped config at toy size (data_root unused)
    cfg = shrunk_config(algorithm, work_dir)
else:
    cfg = Config(hirl_config(algorithm, data_root, work_dir, max_epochs=3, warmup_epochs=1,
                             batch_size=4, iter_wise_assignment=True))
    cfg.custom_hooks[0]['feature_bank'] = bank_mode
setup_launcher(cfg, 'pytorch')  # as tools/train.py does: gloo on a machine without GPU
runner = Runner.from_cfg(cfg)
runner.train()
model = get_ori_model(runner.model)
torch.save(dict(prototypes=model.prototypes.state_dict(), received=received,
                world_size=dist.get_world_size(), bank_rounds=bank_rounds, seen=seen),
           work_dir / f'rank{dist.get_rank()}.pth')
# Release the DDP model before the process group closes (at exit, see hirl_mm.utils.launch).
del runner, model
