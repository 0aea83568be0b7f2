"""Find the image files of a data set that cannot be read, and say so when one is loaded.

Two parts:

* :func:`install_image_load_messages` (run when ``hirl_mm`` is imported) makes mmcv's
  ``LoadImageFromFile`` (the class every mmpretrain / hirl_mm pipeline uses) raise
  :class:`UnreadableImageError` naming the file, the sample index and how to find every such
  file, instead of mmcv's bare ``AssertionError: failed to load image: <path>`` (OpenCV
  returns no image for a truncated or corrupt file) or the decoder's own error. With
  ``ignore_empty=True`` such a file is skipped (the transform returns None), as mmcv
  documents, for OpenCV's silent failure too.
* :func:`find_unreadable_images`: an opt-in check of every image file of a data set (see
  ``ImageCheckHook`` and ``tools/train.py --check-images``), cheap enough for a whole data
  set: it reads each header and, for PNG, every chunk's checksum, and for JPEG whether the
  file ends with its end-of-image marker (a truncated JPEG does not); ``decode=True``
  decodes every image fully instead (slower, catches corrupt pixel data too).
"""
import os.path as osp
from typing import Any, Callable, Iterator, List, Optional, Tuple

from mmengine import dist

__all__ = ['UnreadableImageError', 'check_image_file', 'image_paths',
           'find_unreadable_images', 'install_image_load_messages', 'CHECK_HINT']

# How to list every unreadable file before training (named in the messages).
CHECK_HINT = ('list every unreadable image of the training set before the first iteration '
              'with `python tools/train.py CONFIG --check-images` (or custom_hooks=[..., '
              "dict(type='ImageCheckHook')])")
_JPEG_END = b'\xff\xd9'
# A JPEG may carry a few padding bytes after its end marker; look for it near the end.
_JPEG_TAIL_BYTES = 1024


class UnreadableImageError(OSError):
    """An image file of a data set is missing, empty, truncated or not an image."""


def check_image_file(path: str, decode: bool = False) -> Optional[str]:
    """Why an image file cannot be read, or None if it looks intact.

    Args:
        path (str): A local image file.
        decode (bool): Decode the pixels fully (slower) instead of the quick checks.

    Returns:
        str | None: E.g. ``'truncated (ends before its end-of-image marker)'``.
    """
    from PIL import Image
    if not osp.isfile(path):
        return 'missing'
    size = osp.getsize(path)
    if size == 0:
        return 'empty (0 bytes)'
    try:
        with Image.open(path) as img:
            fmt = img.format
            if decode:
                img.load()
            else:
                img.verify()  # PNG: every chunk and its checksum
    except Exception as error:  # whatever the decoder trips on: the file's fault
        return f'truncated or not an image ({type(error).__name__}: {error})'
    if fmt == 'JPEG' and not decode:
        with open(path, 'rb') as f:
            f.seek(max(0, size - _JPEG_TAIL_BYTES))
            if _JPEG_END not in f.read():
                return 'truncated (the JPEG ends before its end-of-image marker)'
    return None


def _innermost(dataset: Any) -> Any:
    """The data set under wrappers that repeat it (``RepeatDataset``, ``ClassBalanced``)."""
    while hasattr(dataset, 'dataset') and not hasattr(dataset, 'get_data_info'):
        dataset = dataset.dataset
    return dataset


def image_paths(dataset: Any) -> Iterator[Tuple[int, str]]:
    """``(index, img_path)`` of every sample that is read from an image file.

    Args:
        dataset: A built mmengine data set (``get_data_info``).

    Yields:
        tuple[int, str]: The sample index and its file; samples kept in memory (no
        ``img_path``) are skipped.
    """
    dataset = _innermost(dataset)
    if not callable(getattr(dataset, 'get_data_info', None)):
        return
    for index in range(len(dataset)):
        path = dataset.get_data_info(index).get('img_path')
        if isinstance(path, str) and '://' not in path:
            yield index, path


def find_unreadable_images(dataset: Any, decode: bool = False, progress: bool = True
                           ) -> Tuple[int, List[Tuple[int, str, str]]]:
    """Check every image file of a data set, split over the ranks.

    Args:
        dataset: A built mmengine data set.
        decode (bool): See :func:`check_image_file`.
        progress (bool): Show a progress bar (rank 0).

    Returns:
        tuple: The number of files checked, and ``(index, path, reason)`` of each unreadable
        one, sorted by index (the same on every rank).
    """
    from mmengine.utils import ProgressBar
    rank, world_size = dist.get_rank(), dist.get_world_size()
    paths = list(image_paths(dataset))
    mine = paths[rank::world_size]
    bar = ProgressBar(len(mine)) if progress and rank == 0 and mine else None
    bad = []
    for index, path in mine:
        reason = check_image_file(path, decode)
        if reason is not None:
            bad.append((index, path, reason))
        if bar is not None:
            bar.update()
    if bar is not None:
        print()  # the bar leaves the cursor at the end of its line
    if world_size > 1:
        bad = [item for part in dist.all_gather_object(bad) for item in part]
    return len(paths), sorted(bad)


def _unreadable(results: dict, detail: str) -> UnreadableImageError:
    path = results.get('img_path')
    index = results.get('sample_idx')
    where = f' (sample_idx {index} of the data set)' if index is not None else ''
    if path is not None and not osp.isfile(path):
        why = 'does not exist'
    elif path is not None and osp.getsize(path) == 0:
        why = 'is empty (0 bytes)'
    else:
        why = f'cannot be decoded: it is truncated, corrupt or not an image ({detail})'
    return UnreadableImageError(
        f'The image file {path}{where} {why}. Replace or delete it (and its line in the '
        f'ann_file, if any); {CHECK_HINT}.')


def _with_messages(transform: Callable) -> Callable:
    """Wrap ``LoadImageFromFile.transform`` (see the module docstring)."""

    def load(self, results: dict) -> Optional[dict]:
        if not isinstance(results.get('img_path'), str):
            return transform(self, results)  # no file to blame (e.g. images in memory)
        try:
            return transform(self, results)
        except AssertionError as error:  # mmcv: OpenCV returned no image
            if 'failed to load image' not in str(error):
                raise
            if self.ignore_empty:
                return None
            raise _unreadable(results, 'OpenCV could not decode it') from None
        except UnreadableImageError:
            raise
        except Exception as error:  # the reader's or the decoder's error
            raise _unreadable(results, f'{type(error).__name__}: {error}') from error

    load._hirl_mm_messages = True
    load.__doc__ = transform.__doc__
    return load


def install_image_load_messages() -> None:
    """Wrap mmcv's ``LoadImageFromFile.transform`` once (see the module docstring).

    mmpretrain registers mmcv's class itself, so every scope's ``LoadImageFromFile`` is
    this one class. Calling it again does nothing.
    """
    from mmcv.transforms import LoadImageFromFile
    if not getattr(LoadImageFromFile.transform, '_hirl_mm_messages', False):
        LoadImageFromFile.transform = _with_messages(LoadImageFromFile.transform)
