"""Shared fixtures: the tests folder is importable (tiny_setup) and a toy image folder."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tiny_setup import make_image_folder  # noqa: E402


@pytest.fixture(scope='session')
def image_folder(tmp_path_factory) -> Path:
    """40 PNGs of 4 classes in an ImageNet-style folder, shared by the session."""
    return make_image_folder(tmp_path_factory.mktemp('images'), per_class=10)


@pytest.fixture(scope='module')
def single_thread():
    """Thin models on a shared 2-core machine run much faster single-threaded; modules opt
    in with ``pytestmark = pytest.mark.usefixtures('single_thread')``."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
