"""Two processes (gloo, CPU): identical prototypes on every rank, each sample once."""
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tiny_setup import make_image_folder

pytestmark = [pytest.mark.dist, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize('algorithm', ['SimCLR', 'MoCo'])
def test_two_ranks_hold_identical_prototypes(algorithm, tmp_path):
    data = make_image_folder(tmp_path / 'data', per_class=10)
    # 41 images: the two ranks' shares are uneven, as on a real data set.
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(data / 'class_0' / 'extra.png')
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    env = dict(os.environ, OMP_NUM_THREADS='1',
               PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[2]),
                                           os.environ.get('PYTHONPATH', '')]))
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
           f'--master_port={_free_port()}', str(Path(__file__).with_name('dist_worker.py')),
           algorithm, str(data), str(work_dir)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    (work_dir / 'torchrun.log').write_text(proc.stdout + proc.stderr)  # whole log, to debug
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    ranks = [torch.load(work_dir / f'rank{r}.pth', map_location='cpu') for r in (0, 1)]
    assert all(r['world_size'] == 2 for r in ranks)
    protos0, protos1 = ranks[0]['prototypes'], ranks[1]['prototypes']
    assert int(protos0['num_updates']) == 2
    assert protos0.keys() == protos1.keys()
    for key in protos0:  # includes iter-wise re-assignments, synchronised across ranks
        assert torch.equal(protos0[key], protos1[key]), key
    assert protos0['im2cluster_0'].shape == (41, )
    for rank in ranks:
        assert len(rank['received']) == 2  # two clustering rounds
        for indices in rank['received']:
            assert sorted(indices.tolist()) == list(range(41))  # each sample exactly once


def test_two_ranks_cluster_the_training_fed_bank(tmp_path):
    """feature_bank=True on 2 gloo processes: each rank clusters only the rows of samples
    it trained on (plus its share of those no rank saw), no features are gathered, and
    the prototypes are identical on both ranks."""
    data = make_image_folder(tmp_path / 'data', per_class=10)
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(data / 'class_0' / 'extra.png')
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    env = dict(os.environ, OMP_NUM_THREADS='1', HIRL_TEST_FEATURE_BANK='1',
               PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[2]),
                                           os.environ.get('PYTHONPATH', '')]))
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
           f'--master_port={_free_port()}', str(Path(__file__).with_name('dist_worker.py')),
           'MoCo', str(data), str(work_dir)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    (work_dir / 'torchrun.log').write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [torch.load(work_dir / f'rank{r}.pth', map_location='cpu') for r in (0, 1)]
    protos0, protos1 = ranks[0]['prototypes'], ranks[1]['prototypes']
    assert int(protos0['num_updates']) == 2 and protos0['im2cluster_0'].shape == (41, )
    for key in protos0:
        assert torch.equal(protos0[key], protos1[key]), key
    for round_index in range(2):  # rounds before epochs 1 and 2, from epochs 0 and 1
        held = [set(rank['bank_rounds'][round_index]['sample_idx'].tolist())
                for rank in ranks]
        assert held[0].isdisjoint(held[1]) and held[0] | held[1] == set(range(41))
        epoch = ranks[0]['bank_rounds'][round_index]['epoch']
        seen = [set(rank['seen'][epoch]) for rank in ranks]
        missing = set(range(41)) - seen[0] - seen[1]
        num_missing = ranks[0]['bank_rounds'][round_index]['num_missing']
        # 41 images, 2 ranks x 5 batches of 4 (drop_last): at least one sample unseen.
        assert num_missing == len(missing) >= 1
        for rank, rank_held in enumerate(held):
            # Only rows of its own samples, or its share of the unseen ones.
            assert rank_held <= seen[rank] | missing
            assert len(rank_held) <= len(seen[rank]) + len(missing)


@pytest.mark.skipif(not os.path.isfile('/usr/share/datasets/fashion-mnist/'
                                       'train-images-idx3-ubyte.gz'),
                    reason='Debian package dataset-fashion-mnist is not installed')
def test_two_ranks_of_hirl_dino_hold_identical_prototypes(tmp_path):
    """HIRL-DINO (tiny ViT, teacher-space clustering) on 2 gloo processes, 50 images."""
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    env = dict(os.environ, OMP_NUM_THREADS='1',
               PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[2]),
                                           os.environ.get('PYTHONPATH', '')]))
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
           f'--master_port={_free_port()}', str(Path(__file__).with_name('dist_worker.py')),
           'configs/study/hirl-dino_tiny-vit_fashion-mnist.py', 'unused', str(work_dir)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600,
                          cwd=str(Path(__file__).parents[2]))
    (work_dir / 'torchrun.log').write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [torch.load(work_dir / f'rank{r}.pth', map_location='cpu') for r in (0, 1)]
    protos0, protos1 = ranks[0]['prototypes'], ranks[1]['prototypes']
    assert int(protos0['num_updates']) == 2 and protos0['im2cluster_0'].shape == (50, )
    for key in protos0:
        assert torch.equal(protos0[key], protos1[key]), key
    for rank in ranks:
        for indices in rank['received']:
            assert sorted(indices.tolist()) == list(range(50))
