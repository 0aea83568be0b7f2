"""dataset_fingerprint: same sample list -> same digest, wherever the data lie; any change
of the list (size, order, paths, labels, in-memory pixels) -> another digest."""
import shutil

import numpy as np
from mmengine.dataset import BaseDataset
from mmpretrain.datasets import CustomDataset
from torch.utils.data import Subset

from hirl_mm.datasets.fingerprint import DIGEST_SIZE, dataset_fingerprint
from tiny_setup import make_image_folder


class InMemory(BaseDataset):
    def __init__(self, imgs, labels):
        self.imgs, self.labels = imgs, labels
        super().__init__(serialize_data=True)

    def load_data_list(self):
        return [dict(img=i, gt_label=int(l)) for i, l in zip(self.imgs, self.labels)]


def test_file_lists_count_relative_to_their_root(tmp_path):
    root = make_image_folder(tmp_path / 'a', per_class=2)
    digest = dataset_fingerprint(CustomDataset(data_root=str(root), with_label=False))
    assert len(digest) == DIGEST_SIZE
    moved = shutil.copytree(root, tmp_path / 'b')
    assert dataset_fingerprint(CustomDataset(data_root=str(moved), with_label=False)) == digest
    (moved / 'class_3' / '001.png').unlink()
    assert dataset_fingerprint(CustomDataset(data_root=str(moved), with_label=False)) != digest
    labelled = CustomDataset(data_root=str(root))  # the same files, with class labels
    assert dataset_fingerprint(labelled) != digest


def test_in_memory_pixels_labels_and_order_count():
    imgs = np.random.default_rng(0).integers(0, 255, (6, 4, 4), dtype=np.uint8)
    labels = np.arange(6) % 3
    digest = dataset_fingerprint(InMemory(imgs, labels))
    assert dataset_fingerprint(InMemory(imgs.copy(), labels.copy())) == digest
    changed = imgs.copy()
    changed[2, 0, 0] ^= 1
    assert dataset_fingerprint(InMemory(changed, labels)) != digest
    assert dataset_fingerprint(InMemory(imgs, (labels + 1) % 3)) != digest
    assert dataset_fingerprint(InMemory(imgs[::-1], labels[::-1])) != digest
    whole = InMemory(imgs, labels)
    assert dataset_fingerprint(Subset(whole, [0, 1, 2])) != \
        dataset_fingerprint(Subset(whole, [0, 1, 3]))
