"""iBOT's patch masks for the global crops of a multi-crop sample.

iBOT (Zhou et al., "iBOT: Image BERT Pre-Training with Online Tokenizer", arXiv 2111.07832)
masks patches of the two global crops only; the student predicts the teacher's tokens there.
This transform draws those masks the way the reference ``ImageFolderMask`` does
(bytedance/ibot ``loader.py``): a prediction ratio per crop (``get_pred_ratio``), then
BEiT-style block-wise masking or uniformly random patches.
"""
import math
from numbers import Number
from typing import List, Sequence, Tuple, Union

import numpy as np
from mmcv.transforms import BaseTransform

from hirl_mm.registry import TRANSFORMS

Ratio = Union[float, Sequence[float]]


def _as_tuple(value: Ratio, name: str) -> Tuple[float, ...]:
    """A ratio argument as a non-empty tuple of floats."""
    values = (value, ) if isinstance(value, Number) else tuple(value)
    if not values or not all(isinstance(v, Number) for v in values):
        raise ValueError(f'{name} must be a number or a non-empty sequence of numbers, '
                         f'got {value!r}')
    return tuple(float(v) for v in values)


@TRANSFORMS.register_module()
class iBOTMaskGenerator(BaseTransform):
    """Boolean patch masks for the first ``num_masked_views`` views (the global crops).

    Runs after mmpretrain's ``MultiView``: ``results['img']`` is a list of HxWxC views.
    ``PackInputs`` then stores the mask as a tensor in ``data_sample.mask`` ('mask' is one
    of its default keys).

    **Required Keys:** ``img`` (list of views, or one array for a single view).

    **Added Keys:** ``mask`` (np.ndarray of bool, ``(num_masked_views, H // patch_size,
    W // patch_size)``; True = patch to be masked and predicted).

    Args:
        patch_size (int): Side of a square patch in pixels. Defaults to 16.
        num_masked_views (int): How many leading views get a mask; they must share one size.
            Defaults to 2 (iBOT's two global crops).
        pred_ratio (float | Sequence[float]): Prediction (mask) ratio(s). With several, one
            value is drawn around each and one of those is chosen per crop. Defaults to
            (0.0, 0.3): half of the crops unmasked.
        pred_ratio_var (float | Sequence[float]): Half-width of the uniform range around each
            ratio (0 = fixed ratio); a number applies to every ratio. Defaults to (0.0, 0.2),
            so masked crops have a ratio in [0.1, 0.5] (the released recipe).
        pred_aspect_ratio (Tuple[float, float]): Range of a block's aspect ratio, sampled
            log-uniformly. Defaults to (0.3, 1 / 0.3).
        pred_shape (str): 'block' (BEiT-style blocks) or 'rand' (random patches).
            Defaults to 'block'.
    """

    SHAPES = ('block', 'rand')
    MAX_ATTEMPTS = 10  # per block, as the reference (and BEiT)

    def __init__(self,
                 patch_size: int = 16,
                 num_masked_views: int = 2,
                 pred_ratio: Ratio = (0.0, 0.3),
                 pred_ratio_var: Ratio = (0.0, 0.2),
                 pred_aspect_ratio: Tuple[float, float] = (0.3, 1 / 0.3),
                 pred_shape: str = 'block') -> None:
        if not isinstance(patch_size, int) or patch_size < 1:
            raise ValueError(f'patch_size must be a positive int, got {patch_size!r}')
        if not isinstance(num_masked_views, int) or num_masked_views < 1:
            raise ValueError(
                f'num_masked_views must be a positive int, got {num_masked_views!r}')
        ratios = _as_tuple(pred_ratio, 'pred_ratio')
        variances = _as_tuple(pred_ratio_var, 'pred_ratio_var')
        if len(variances) == 1:  # one variance for every ratio, as the reference
            variances = variances * len(ratios)
        if len(variances) != len(ratios):
            raise ValueError(f'pred_ratio_var {variances} must be one number or one per '
                             f'pred_ratio {ratios}')
        for ratio, var in zip(ratios, variances):
            if not 0 <= ratio <= 1:
                raise ValueError(f'pred_ratio must be in [0, 1], got {ratio}')
            if var < 0 or var > ratio:
                raise ValueError(f'pred_ratio_var must be in [0, pred_ratio], got var {var} '
                                 f'for ratio {ratio}')
            if ratio + var > 1:
                raise ValueError(f'pred_ratio + pred_ratio_var must be <= 1, got {ratio} + '
                                 f'{var}')
        if len(pred_aspect_ratio) != 2 or not 0 < pred_aspect_ratio[0] <= pred_aspect_ratio[1]:
            raise ValueError('pred_aspect_ratio must be (min, max) with 0 < min <= max, got '
                             f'{pred_aspect_ratio!r}')
        if pred_shape not in self.SHAPES:
            raise ValueError(f'pred_shape must be one of {self.SHAPES}, got {pred_shape!r}')
        self.patch_size = patch_size
        self.num_masked_views = num_masked_views
        self.pred_ratio = ratios
        self.pred_ratio_var = variances
        self.pred_aspect_ratio = tuple(float(a) for a in pred_aspect_ratio)
        self.log_aspect_ratio = tuple(math.log(a) for a in self.pred_aspect_ratio)
        self.pred_shape = pred_shape

    def get_pred_ratio(self) -> float:
        """One crop's prediction ratio: a draw around every ratio, then one of them.

        Returns:
            float: The fraction of patches to mask.
        """
        # numpy's global RNG, as mmpretrain's transforms: mmengine seeds it per worker.
        draws = [np.random.uniform(r - v, r + v) if v > 0 else r
                 for r, v in zip(self.pred_ratio, self.pred_ratio_var)]
        return float(draws[np.random.randint(len(draws))] if len(draws) > 1 else draws[0])

    def _add_block(self, mask: np.ndarray, max_patches: float) -> int:
        """Mask one more block of at most ``max_patches`` new patches.

        Args:
            mask (np.ndarray): (H, W) bool mask, updated in place.
            max_patches (float): Upper bound on the patches this block may add.

        Returns:
            int: How many patches were newly masked (0 when every attempt failed).
        """
        height, width = mask.shape
        min_area = (min(height, width) // 3)**2
        for _ in range(self.MAX_ATTEMPTS):
            area = np.random.uniform(min_area, max_patches)
            aspect = math.exp(np.random.uniform(*self.log_aspect_ratio))
            h = int(round(math.sqrt(area * aspect)))
            w = int(round(math.sqrt(area / aspect)))
            if h >= height or w >= width:
                continue
            # Inclusive upper bound, as Python's random.randint in the reference.
            top = np.random.randint(0, height - h + 1)
            left = np.random.randint(0, width - w + 1)
            block = mask[top:top + h, left:left + w]
            new = h * w - int(block.sum())
            if 0 < new <= max_patches:
                block[...] = True
                return new
        return 0

    def _mask(self, height: int, width: int) -> np.ndarray:
        """One crop's (height, width) patch mask."""
        target = self.get_pred_ratio() * height * width
        if self.pred_shape == 'rand':
            mask = np.zeros(height * width, dtype=bool)
            mask[:int(target)] = True
            np.random.shuffle(mask)
            return mask.reshape(height, width)
        mask = np.zeros((height, width), dtype=bool)
        count = 0
        while count < target:
            added = self._add_block(mask, target - count)
            if added == 0:  # no block fits the remaining budget: stop below the target
                break
            count += added
        return mask

    def transform(self, results: dict) -> dict:
        """Add ``results['mask']`` for the leading views.

        Args:
            results (dict): Result dict after ``MultiView``.

        Returns:
            dict: The results with ``mask`` of shape (num_masked_views, h, w).
        """
        views: List[np.ndarray] = results['img']
        if isinstance(views, np.ndarray):
            views = [views]
        if len(views) < self.num_masked_views:
            raise ValueError(f'iBOTMaskGenerator masks {self.num_masked_views} views but got '
                             f'{len(views)}')
        sizes = {tuple(view.shape[:2]) for view in views[:self.num_masked_views]}
        if len(sizes) != 1:
            raise ValueError(f'the {self.num_masked_views} masked views must share one size, '
                             f'got {sorted(sizes)}')
        size = sizes.pop()
        if size[0] % self.patch_size or size[1] % self.patch_size:
            raise ValueError(f'view size {size[0]}x{size[1]} is not divisible by patch_size '
                             f'{self.patch_size}')
        height, width = size[0] // self.patch_size, size[1] // self.patch_size
        results['mask'] = np.stack(
            [self._mask(height, width) for _ in range(self.num_masked_views)])
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(patch_size={self.patch_size}, '
                f'num_masked_views={self.num_masked_views}, pred_ratio={self.pred_ratio}, '
                f'pred_ratio_var={self.pred_ratio_var}, '
                f'pred_aspect_ratio={self.pred_aspect_ratio}, pred_shape={self.pred_shape!r})')
