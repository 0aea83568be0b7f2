"""An unreadable image is named with its sample index and how to find all such files
(issue 21, case 6), in training as in any pipeline; the quick file check finds truncated
PNGs and JPEGs and empty or missing files."""
import io

import numpy as np
import pytest
from mmcv.transforms import LoadImageFromFile
from mmengine.config import Config
from mmengine.runner import Runner
from PIL import Image

from hirl_mm.datasets.image_check import UnreadableImageError, check_image_file
from tiny_setup import hirl_config, make_image_folder

pytestmark = pytest.mark.usefixtures('single_thread')


def _jpeg(path, truncate: bool = False) -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(
        buffer, format='JPEG')
    data = buffer.getvalue()
    path.write_bytes(data[:len(data) // 2] if truncate else data)


def test_quick_check_finds_truncated_empty_and_missing_files(tmp_path):
    root = make_image_folder(tmp_path / 'data', per_class=1)
    png = root / 'class_0' / '000.png'
    assert check_image_file(str(png)) is None
    png.write_bytes(png.read_bytes()[:100])
    assert check_image_file(str(png)).startswith('truncated or not an image')
    _jpeg(tmp_path / 'good.jpg')
    _jpeg(tmp_path / 'cut.jpg', truncate=True)
    assert check_image_file(str(tmp_path / 'good.jpg')) is None
    assert 'end-of-image marker' in check_image_file(str(tmp_path / 'cut.jpg'))
    assert 'truncated' in check_image_file(str(tmp_path / 'cut.jpg'), decode=True)
    (tmp_path / 'empty.png').write_bytes(b'')
    assert check_image_file(str(tmp_path / 'empty.png')) == 'empty (0 bytes)'
    assert check_image_file(str(tmp_path / 'gone.png')) == 'missing'


def test_training_on_a_truncated_image_names_it(tmp_path):
    """mmcv's default (OpenCV) loader: once a batch reaches the image, the run stops with
    its path, sample index and how to list all such files."""
    root = make_image_folder(tmp_path / 'data', per_class=2)
    bad = root / 'class_2' / '001.png'
    bad.write_bytes(bad.read_bytes()[:60])
    cfg = hirl_config('SimCLR', root, tmp_path / 'work', num_clusters=(4, 2), batch_size=8)
    with pytest.raises(UnreadableImageError,
                       match=f'The image file {bad} \\(sample_idx 5 of the data set\\) cannot '
                             f'be decoded: it is truncated.*Replace or delete it.*--check-images'):
        Runner.from_cfg(Config(cfg)).train()


def test_ignore_empty_skips_what_opencv_cannot_decode(tmp_path):
    bad = tmp_path / 'bad.png'
    bad.write_bytes(b'\x89PNG\r\n\x1a\n' + b'\0' * 40)
    assert LoadImageFromFile(ignore_empty=True)(dict(img_path=str(bad))) is None
    with pytest.raises(UnreadableImageError, match='sample_idx 7'):
        LoadImageFromFile()(dict(img_path=str(bad), sample_idx=7))
