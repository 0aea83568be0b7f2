"""Tests of HierarchicalFashionMNIST on small IDX files written here, and on Debian's files."""
import gzip
import os.path as osp
from typing import Tuple

import numpy as np
import pytest
import torch

from hirl_mm.datasets import (FASHION_MNIST_FINE_TO_COARSE, HierarchicalFashionMNIST,
                              read_idx)
from hirl_mm.registry import DATASETS

DEBIAN_ROOT = '/usr/share/datasets/fashion-mnist'


def _idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array in the IDX format: 0, 0, type 0x08, ndim, big-endian dims."""
    header = bytes([0, 0, 0x08, array.ndim])
    header += b''.join(int(d).to_bytes(4, 'big') for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_split(root: str, prefix: str, imgs: np.ndarray, labels: np.ndarray,
                 compress: bool) -> None:
    for kind, array in (('images-idx3', imgs), ('labels-idx1', labels)):
        path = osp.join(root, f'{prefix}-{kind}-ubyte')
        data = _idx_bytes(array)
        if compress:
            with gzip.open(path + '.gz', 'wb') as f:
                f.write(data)
        else:
            with open(path, 'wb') as f:
                f.write(data)


def _fake_split(num: int, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """Images whose first pixel encodes their file index; labels cycle shuffled over 0..9."""
    rng = np.random.default_rng(seed)
    imgs = rng.integers(0, 256, size=(num, 6, 5), dtype=np.uint8)
    imgs[:, 0, 0] = np.arange(num) % 256
    labels = rng.permutation(np.arange(num) % 10).astype(np.uint8)
    return imgs, labels


@pytest.fixture(params=[True, False], ids=['gz', 'raw'])
def fake_root(tmp_path, request):
    """A data root with a 40-image train and a 20-image test split, gzip or raw."""
    data = {'train': _fake_split(40, 0), 'test': _fake_split(20, 1)}
    _write_split(str(tmp_path), 'train', *data['train'], compress=request.param)
    _write_split(str(tmp_path), 't10k', *data['test'], compress=request.param)
    return str(tmp_path), data


def test_read_idx_roundtrip(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / 'a').write_bytes(_idx_bytes(array))
    (tmp_path / 'b').write_bytes(gzip.compress(_idx_bytes(array)))  # gz without the suffix
    np.testing.assert_array_equal(read_idx(str(tmp_path / 'a')), array)
    np.testing.assert_array_equal(read_idx(str(tmp_path / 'b')), array)
    (tmp_path / 'bad').write_bytes(b'\x01\x02\x03\x04')
    with pytest.raises(ValueError, match='not an IDX file'):
        read_idx(str(tmp_path / 'bad'))
    (tmp_path / 'short').write_bytes(_idx_bytes(array)[:-1])
    with pytest.raises(ValueError, match='header declares'):
        read_idx(str(tmp_path / 'short'))


@pytest.mark.parametrize('split', ['train', 'test'])
def test_parsing_and_labels(fake_root, split):
    root, data = fake_root
    imgs, labels = data[split]
    ds = HierarchicalFashionMNIST(data_root=root, split=split, to_rgb=False)
    assert len(ds) == len(labels)
    for i in (0, len(ds) - 1):
        info = ds.get_data_info(i)
        np.testing.assert_array_equal(info['img'], imgs[i])
        assert info['img'].dtype == np.uint8 and info['img'].shape == (6, 5)
        assert info['gt_label'] == labels[i]
        assert info['coarse_label'] == FASHION_MNIST_FINE_TO_COARSE[labels[i]]
        assert info['sample_idx'] == i
    np.testing.assert_array_equal(ds.get_gt_labels(), labels)
    np.testing.assert_array_equal(ds.get_coarse_labels(),
                                  np.array(FASHION_MNIST_FINE_TO_COARSE)[labels])
    assert ds.get_coarse_labels().dtype == np.int64


def test_coarse_mapping_and_metainfo():
    meta = HierarchicalFashionMNIST.METAINFO
    classes, coarse = meta['classes'], meta['coarse_classes']
    groups = {name: coarse[c] for name, c in zip(classes, meta['fine_to_coarse'])}
    assert groups == {
        'T-shirt/top': 'tops', 'Pullover': 'tops', 'Coat': 'tops', 'Shirt': 'tops',
        'Trouser': 'bottoms', 'Dress': 'dresses', 'Sandal': 'footwear', 'Sneaker': 'footwear',
        'Ankle boot': 'footwear', 'Bag': 'bags'
    }
    assert list(coarse) == ['tops', 'bottoms', 'dresses', 'footwear', 'bags']
    ds = HierarchicalFashionMNIST(data_root='/nonexistent', lazy_init=True)
    assert ds.metainfo['coarse_classes'] == coarse and len(ds.CLASSES) == 10
    assert ds.COARSE_CLASSES == coarse


def test_to_rgb(fake_root):
    root, data = fake_root
    ds = HierarchicalFashionMNIST(data_root=root, split='test')
    img = ds.get_data_info(3)['img']
    assert img.shape == (6, 5, 3) and img.dtype == np.uint8 and img.flags.c_contiguous
    for c in range(3):
        np.testing.assert_array_equal(img[..., c], data['test'][0][3])


def test_balanced_subset_is_deterministic(fake_root):
    root, data = fake_root
    labels = data['train'][1]
    ds = HierarchicalFashionMNIST(data_root=root, num_per_class=3, to_rgb=False)
    assert len(ds) == 30
    gt = ds.get_gt_labels()
    np.testing.assert_array_equal(np.bincount(gt, minlength=10), np.full(10, 3))
    # The first 3 images of each class in file order, kept in file order.
    expected = np.sort(np.concatenate([np.flatnonzero(labels == c)[:3] for c in range(10)]))
    file_idx = np.array([ds.get_data_info(i)['img'][0, 0] for i in range(len(ds))])
    np.testing.assert_array_equal(file_idx, expected)
    np.testing.assert_array_equal(gt, labels[expected])
    again = HierarchicalFashionMNIST(data_root=root, num_per_class=3, to_rgb=False)
    np.testing.assert_array_equal(again.get_gt_labels(), gt)
    with pytest.raises(ValueError, match='balanced subset is impossible'):
        HierarchicalFashionMNIST(data_root=root, num_per_class=5)  # 4 images per class
    with pytest.raises(ValueError, match='num_per_class'):
        HierarchicalFashionMNIST(data_root=root, num_per_class=0)


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        HierarchicalFashionMNIST(data_root=str(tmp_path))
    msg = str(err.value)
    assert osp.join(str(tmp_path), 'train-images-idx3-ubyte.gz') in msg
    assert 'apt-get install dataset-fashion-mnist' in msg and 'data_root' in msg
    with pytest.raises(ValueError, match='split'):
        HierarchicalFashionMNIST(data_root=str(tmp_path), split='val')


def test_build_from_registry_and_pack_inputs(fake_root):
    root, data = fake_root
    ds = DATASETS.build(
        dict(type='HierarchicalFashionMNIST', data_root=root, split='test',
             pipeline=[dict(type='PackInputs')]))
    out = ds[4]
    assert out['inputs'].shape == (3, 6, 5) and out['inputs'].dtype == torch.uint8
    sample = out['data_samples']
    assert sample.sample_idx == 4
    assert sample.gt_label.tolist() == [int(data['test'][1][4])]
    # PackInputs drops keys it is not told about: coarse_label is not packed by default.
    assert 'coarse_label' not in sample
    assert sample.img_shape == (6, 5) and sample.ori_shape == (6, 5)


def test_pack_inputs_with_coarse_label(fake_root):
    root, data = fake_root
    expected = FASHION_MNIST_FINE_TO_COARSE[data['test'][1][2]]
    ds = HierarchicalFashionMNIST(
        data_root=root, split='test',
        pipeline=[dict(type='PackInputs', algorithm_keys=['coarse_label'])])
    assert ds[2]['data_samples'].coarse_label == expected  # a data field (Python int)
    ds = HierarchicalFashionMNIST(
        data_root=root, split='test',
        pipeline=[dict(type='PackInputs', meta_keys=['sample_idx', 'coarse_label'])])
    sample = ds[2]['data_samples']
    assert sample.metainfo['coarse_label'] == expected and sample.sample_idx == 2


def test_standard_pipeline(fake_root):
    root, _ = fake_root
    ds = HierarchicalFashionMNIST(
        data_root=root,
        pipeline=[
            dict(type='RandomResizedCrop', scale=16),
            dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1),
            dict(type='RandomFlip', prob=0.5),
            dict(type='PackInputs'),
        ])
    assert ds[0]['inputs'].shape == (3, 16, 16)


@pytest.mark.skipif(not osp.isfile(osp.join(DEBIAN_ROOT, 't10k-labels-idx1-ubyte.gz')),
                    reason='Debian package dataset-fashion-mnist is not installed')
def test_real_debian_files():
    ds = HierarchicalFashionMNIST(split='test', num_per_class=20)
    assert len(ds) == 200
    info = ds.get_data_info(0)
    assert info['img'].shape == (28, 28, 3) and info['img'].dtype == np.uint8
    assert np.bincount(ds.get_coarse_labels()).tolist() == [80, 20, 20, 60, 20]
    full = HierarchicalFashionMNIST(split='test', lazy_init=True)
    full.full_init()
    assert len(full) == 10000
    np.testing.assert_array_equal(np.bincount(full.get_gt_labels()), np.full(10, 1000))
