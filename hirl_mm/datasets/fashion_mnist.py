"""Fashion-MNIST with a two-level (coarse / fine) label hierarchy, read offline from IDX files."""
import gzip
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import numpy as np
from mmengine.logging import print_log
from mmpretrain.datasets import BaseDataset

from hirl_mm.registry import DATASETS

FASHION_MNIST_CLASSES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal',
                         'Shirt', 'Sneaker', 'Bag', 'Ankle boot')
FASHION_MNIST_COARSE_CLASSES = ('tops', 'bottoms', 'dresses', 'footwear', 'bags')
# fine label -> coarse label, indexed by the fine label.
FASHION_MNIST_FINE_TO_COARSE = (0, 1, 0, 2, 0, 3, 0, 3, 4, 3)

DEFAULT_DATA_ROOT = '/usr/share/datasets/fashion-mnist'
# File stem of each split in the original distribution (and in Debian's package).
_SPLIT_PREFIX = {'train': 'train', 'test': 't10k'}
# IDX type byte -> numpy dtype (multi-byte types are big-endian in the format).
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype('>i2'),
    0x0C: np.dtype('>i4'),
    0x0D: np.dtype('>f4'),
    0x0E: np.dtype('>f8'),
}
_GZIP_MAGIC = b'\x1f\x8b'


def read_idx(path: str) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzip-compressed or raw.

    Compression is detected from the file's first bytes, not from its name.

    Args:
        path (str): Path of the file.

    Returns:
        np.ndarray: The array, in native byte order, with the shape the header declares.

    Raises:
        ValueError: If the header is not a valid IDX header or the size does not match it.
    """
    with open(path, 'rb') as f:
        data = f.read()
    if data[:2] == _GZIP_MAGIC:
        data = gzip.decompress(data)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f'{path} is not an IDX file (bad magic number {data[:4]!r}).')
    dtype, ndim = _IDX_DTYPES[data[2]], data[3]
    header_size = 4 * (ndim + 1)
    if ndim == 0 or len(data) < header_size:
        raise ValueError(f'{path}: truncated IDX header.')
    shape = tuple(int.from_bytes(data[4 * (i + 1):4 * (i + 2)], 'big') for i in range(ndim))
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header_size != expected:
        raise ValueError(f'{path}: header declares shape {shape} ({expected} bytes of data) '
                         f'but the file holds {len(data) - header_size} bytes.')
    array = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape)
    return array.astype(dtype.newbyteorder('='), copy=False)


def find_idx_file(data_root: str, stem: str) -> str:
    """Find ``<stem>.gz`` or ``<stem>`` under ``data_root``.

    Args:
        data_root (str): Folder holding the IDX files.
        stem (str): File name without ``.gz``, e.g. ``'train-images-idx3-ubyte'``.

    Returns:
        str: The path of the first candidate that exists (gzip first).

    Raises:
        FileNotFoundError: If neither exists; the message names the paths and the fix.
    """
    candidates = [osp.join(data_root, stem + '.gz'), osp.join(data_root, stem)]
    for path in candidates:
        if osp.isfile(path):
            return path
    raise FileNotFoundError(
        f'Fashion-MNIST file not found: tried {" and ".join(candidates)}. Install the data '
        'with `apt-get install dataset-fashion-mnist` (files go to '
        f'{DEFAULT_DATA_ROOT}), or pass data_root=... pointing at a folder that holds the '
        'original IDX files (gzip-compressed or not). Nothing is downloaded.')


def balanced_subset(labels: np.ndarray, num_per_class: int) -> np.ndarray:
    """Indices of the first ``num_per_class`` samples of every class, in file order.

    Args:
        labels (np.ndarray): 1-D integer labels.
        num_per_class (int): How many samples to keep per class.

    Returns:
        np.ndarray: Sorted indices into ``labels``.

    Raises:
        ValueError: If ``num_per_class < 1`` or a class has fewer samples.
    """
    if num_per_class < 1:
        raise ValueError(f'num_per_class must be >= 1, got {num_per_class}.')
    classes, counts = np.unique(labels, return_counts=True)
    too_small = {int(c): int(n) for c, n in zip(classes, counts) if n < num_per_class}
    if too_small:
        raise ValueError(f'num_per_class={num_per_class} but some classes have fewer samples '
                         f'(class: count) {too_small}; a balanced subset is impossible.')
    # A stable sort keeps file order inside each class, so the choice is deterministic.
    order = np.argsort(labels, kind='stable')
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    keep = np.concatenate([order[s:s + num_per_class] for s in starts])
    return np.sort(keep)


@DATASETS.register_module()
class HierarchicalFashionMNIST(BaseDataset):
    """Fashion-MNIST with fine (10 classes) and coarse (5 groups) labels.

    The original IDX files are read directly (gzip or raw); nothing is ever downloaded.
    Each data info holds ``img`` (uint8, ``HxW``, or ``HxWx3`` if ``to_rgb``), ``gt_label``
    (fine, 0..9), ``coarse_label`` (0..4), ``img_shape`` and ``ori_shape``; mmengine adds
    ``sample_idx``. Coarse groups: tops (T-shirt/top, Pullover, Coat, Shirt), bottoms
    (Trouser), dresses (Dress), footwear (Sandal, Sneaker, Ankle boot), bags (Bag).

    Note that mmpretrain's ``PackInputs`` only packs ``gt_label`` (plus ``gt_score`` and
    ``mask``) as data and ``DEFAULT_META_KEYS`` as metainfo: ``coarse_label`` is dropped unless
    named, e.g. ``dict(type='PackInputs', algorithm_keys=['coarse_label'])`` (a data field,
    kept as a Python int) or in ``meta_keys`` (a metainfo field).

    Args:
        data_root (str): Folder holding ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``.
            Defaults to Debian's ``/usr/share/datasets/fashion-mnist``.
        split (str): ``'train'`` (60k images) or ``'test'`` (10k). Defaults to ``'train'``.
        num_per_class (int, optional): Keep only the first ``num_per_class`` images of each
            class, in file order (deterministic and class-balanced). Defaults to None (all).
        to_rgb (bool): Repeat the grey channel into ``HxWx3`` so standard colour pipelines
            apply. Done when an item is fetched, so the stored data stay single-channel.
            Defaults to True.
        metainfo (dict, optional): Overrides of :attr:`METAINFO`. Defaults to None.
        **kwargs: Other arguments of :class:`mmpretrain.datasets.BaseDataset`
            (``pipeline``, ``test_mode``, ``lazy_init``, ``indices``, ...).
    """

    METAINFO = {
        'classes': FASHION_MNIST_CLASSES,
        'coarse_classes': FASHION_MNIST_COARSE_CLASSES,
        'fine_to_coarse': FASHION_MNIST_FINE_TO_COARSE,
    }

    def __init__(self,
                 data_root: str = DEFAULT_DATA_ROOT,
                 split: str = 'train',
                 num_per_class: Optional[int] = None,
                 to_rgb: bool = True,
                 metainfo: Optional[dict] = None,
                 **kwargs) -> None:
        if split not in _SPLIT_PREFIX:
            raise ValueError(f"split must be one of {list(_SPLIT_PREFIX)}, got '{split}'.")
        if not data_root:
            raise ValueError('data_root must name the folder holding the IDX files.')
        if num_per_class is not None and num_per_class < 1:
            raise ValueError(f'num_per_class must be >= 1 or None, got {num_per_class}.')
        self.split = split
        self.num_per_class = num_per_class
        self.to_rgb = to_rgb
        super().__init__(
            ann_file='',  # the IDX files are both images and annotations
            metainfo=metainfo,
            data_root=osp.expanduser(data_root),
            data_prefix='',
            **kwargs)

    def load_data_list(self) -> List[dict]:
        """Read the split's IDX files into a list of data infos.

        Returns:
            list[dict]: One dict per image with ``img``, ``gt_label`` and ``coarse_label``.
        """
        imgs, labels = self._read_split()
        if self.num_per_class is not None:
            file_indices = balanced_subset(labels, self.num_per_class)
            # Fancy indexing copies, so the full split is not kept alive by a small subset.
            imgs, labels = imgs[file_indices], labels[file_indices]
        fine_to_coarse = np.asarray(self.metainfo['fine_to_coarse'], dtype=np.int64)
        coarse = fine_to_coarse[labels]
        # Python ints pickle small (mmengine serialises every info) and PackInputs accepts them.
        return [
            dict(img=img, gt_label=int(label), coarse_label=int(c))
            for img, label, c in zip(imgs, labels, coarse)
        ]

    def _read_split(self) -> Tuple[np.ndarray, np.ndarray]:
        """Read and check the images (N, H, W) uint8 and fine labels (N,) int64."""
        prefix = _SPLIT_PREFIX[self.split]
        img_path = find_idx_file(self.data_root, f'{prefix}-images-idx3-ubyte')
        label_path = find_idx_file(self.data_root, f'{prefix}-labels-idx1-ubyte')
        imgs, labels = read_idx(img_path), read_idx(label_path)
        if imgs.ndim != 3 or imgs.dtype != np.uint8:
            raise ValueError(f'{img_path}: expected uint8 images (N, H, W), got '
                             f'{imgs.dtype} {imgs.shape}.')
        if labels.ndim != 1 or len(labels) != len(imgs):
            raise ValueError(f'{label_path}: expected {len(imgs)} labels, got shape '
                             f'{labels.shape}.')
        labels = labels.astype(np.int64)
        num_classes = len(self.metainfo['fine_to_coarse'])
        if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f'{label_path}: labels must lie in [0, {num_classes}).')
        print_log(f'{self.__class__.__name__}: read {len(labels)} {self.split} images from '
                  f'{img_path}', logger='current')
        return imgs, labels

    def get_data_info(self, idx: int) -> dict:
        """Get the data info of an index, with the image made 3-channel if ``to_rgb``.

        Args:
            idx (int): Index of the sample.

        Returns:
            dict: The data info (a copy, safe to modify).
        """
        info = super().get_data_info(idx)
        img = info['img']
        if self.to_rgb and img.ndim == 2:
            # np.repeat gives a C-contiguous HxWx3 copy, as cv2-based transforms expect.
            img = np.repeat(img[:, :, None], 3, axis=2)
        info['img'] = img
        info['img_shape'] = info['ori_shape'] = img.shape[:2]
        return info

    def get_gt_labels(self) -> np.ndarray:
        """Get the fine labels of all samples.

        Returns:
            np.ndarray: Fine labels (int64), one per sample, in dataset order.
        """
        return self._label_array('gt_label')

    def get_coarse_labels(self) -> np.ndarray:
        """Get the coarse labels of all samples.

        Returns:
            np.ndarray: Coarse labels (int64), one per sample, in dataset order.
        """
        return self._label_array('coarse_label')

    def _label_array(self, key: str) -> np.ndarray:
        """One label field of every sample, skipping the per-item RGB conversion."""
        infos = (super(HierarchicalFashionMNIST, self).get_data_info(i) for i in range(len(self)))
        return np.fromiter((info[key] for info in infos), dtype=np.int64, count=len(self))

    @property
    def COARSE_CLASSES(self) -> Optional[Sequence[str]]:
        """Names of the coarse classes."""
        return self._metainfo.get('coarse_classes', None)

    def extra_repr(self) -> List[str]:
        """Extra lines of ``repr``: where the data come from and how they are sub-sampled."""
        return [
            f'Data root: \t{self.data_root}',
            f'Split: \t{self.split}',
            f'Images per class: \t{self.num_per_class or "all"}',
            f'Number of coarse categories: \t{len(self.COARSE_CLASSES or ())}',
        ]
