"""Opt-in: check every image file of the training set before the first iteration."""
import os.path as osp

from mmengine import dist
from mmengine.hooks import Hook
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.runner import Runner

from hirl_mm.datasets.image_check import UnreadableImageError, find_unreadable_images
from hirl_mm.registry import HOOKS

__all__ = ['ImageCheckHook']

# Unreadable files named in the message itself; the rest are in the list file.
_SHOWN = 10


@HOOKS.register_module()
@MMENGINE_HOOKS.register_module()  # the root: found from every scope (mmdet, mmseg ...)
class ImageCheckHook(Hook):
    """Stop before the first iteration if any image file of the training set is missing,
    empty, truncated or not an image, listing them all.

    Without it, the first unreadable image stops the run when a batch reaches it, hours in,
    and only that one is named. The quick check (headers, PNG checksums, JPEG end markers)
    takes a few seconds per 10k images, split over the ranks, with a progress bar; the list
    of unreadable files is written to ``<work_dir>/unreadable_images.txt``. Data sets kept
    in memory (no ``img_path``) have nothing to check. ``tools/train.py --check-images``
    adds this hook.

    Args:
        decode (bool): Decode every image fully instead (slower; also finds corrupt pixel
            data). Defaults to False.
    """

    priority = 'VERY_HIGH'  # before the other hooks read samples

    def __init__(self, decode: bool = False) -> None:
        self.decode = decode

    def before_train(self, runner: Runner) -> None:
        dataset = runner.train_dataloader.dataset
        runner.logger.info(f'Checking the image files of the training set '
                           f'({"full decode" if self.decode else "quick check"}) ...')
        checked, bad = find_unreadable_images(dataset, self.decode)
        if not checked:
            runner.logger.info('The training set keeps its images in memory (no img_path): '
                               'no image file to check.')
            return
        if not bad:
            runner.logger.info(f'All {checked} image files of the training set are readable.')
            return
        list_file = osp.join(runner.work_dir, 'unreadable_images.txt')
        if dist.is_main_process():
            with open(list_file, 'w') as f:
                f.writelines(f'{path}\t{index}\t{reason}\n' for index, path, reason in bad)
        shown = '\n'.join(f'  sample_idx {index}: {path}: {reason}'
                          for index, path, reason in bad[:_SHOWN])
        more = f'\n  ... and {len(bad) - _SHOWN} more' if len(bad) > _SHOWN else ''
        raise UnreadableImageError(
            f'{len(bad)} of the {checked} image files of the training set cannot be read:\n'
            f'{shown}{more}\nAll of them (path, sample_idx, reason): {list_file}. Replace '
            f'or delete them (and their lines in the ann_file, if any), then start again '
            f'(HIRL clusters every image of the training set, so skipping them with '
            f"LoadImageFromFile's ignore_empty=True would stop the first clustering round).")
