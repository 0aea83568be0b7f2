"""An in-memory data set of random RGB images for the GPU check: no files, no decoding.

Registered only at run time (:func:`register_synthetic_dataset`), so that a shipped
config's training set can be swapped for it in memory; hirl_mm itself never sees it.
"""
from typing import Any, Dict, Sequence

import numpy as np
from mmpretrain.datasets import BaseDataset

DATASET_NAME = 'GpuCheckSyntheticImages'
# Transforms that read an image file: the images are made in memory instead.
FILE_LOADERS = ('LoadImageFromFile', 'mmpretrain.LoadImageFromFile')


class SyntheticImageDataset(BaseDataset):
    """``num_images`` random ``image_size`` px RGB images, each made from its index.

    A stand-in for an ImageNet folder: a sample is what ``LoadImageFromFile`` would have
    produced (``img``, ``img_shape``, ``ori_shape``), so the config's own augmentations run
    on it, and mmengine's ``BaseDataset`` adds ``sample_idx`` as HIRL needs. The data list
    holds only indices (cheap to fingerprint); an image is drawn when its sample is
    fetched, from a generator seeded with ``(seed, index)``, so every epoch, worker and
    extraction pass sees the same image. File loaders in ``pipeline`` are dropped.

    Args:
        num_images (int): Samples in the data set.
        image_size (int): Height and width of every image. Defaults to 256 (what
            ImageNet's short edge is resized to).
        seed (int): Seed of the images. Defaults to 0.
        pipeline (Sequence[dict]): The training (or extraction) pipeline.
        **kwargs: Further ``BaseDataset`` arguments (``test_mode``, ``lazy_init`` ...).
    """

    def __init__(self, num_images: int, image_size: int = 256, seed: int = 0,
                 pipeline: Sequence[Any] = (), **kwargs) -> None:
        self.num_images = int(num_images)
        self.image_size = int(image_size)
        self.seed = int(seed)
        pipeline = [t for t in pipeline
                    if not (isinstance(t, dict) and t.get('type') in FILE_LOADERS)]
        # Not serialized: the list holds only indices, and serializing runs gc.collect().
        kwargs.setdefault('serialize_data', False)
        super().__init__(ann_file='', pipeline=pipeline, **kwargs)

    def load_data_list(self) -> list:
        """One entry per image, holding only its index."""
        return [dict(img_id=i) for i in range(self.num_images)]

    def get_data_info(self, idx: int) -> Dict[str, Any]:
        """The sample's info with its image drawn, as ``LoadImageFromFile`` leaves it."""
        info = super().get_data_info(idx)
        rng = np.random.default_rng((self.seed, info['img_id']))
        size = self.image_size
        img = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
        info.update(img=img, img_shape=(size, size), ori_shape=(size, size))
        return info


def register_synthetic_dataset() -> str:
    """Register :class:`SyntheticImageDataset` in hirl_mm's (and mmpretrain's) DATASETS.

    Returns:
        str: The registered name (:data:`DATASET_NAME`).
    """
    from hirl_mm.registry import DATASETS
    DATASETS.register_module(name=DATASET_NAME, module=SyntheticImageDataset, force=True)
    return DATASET_NAME
