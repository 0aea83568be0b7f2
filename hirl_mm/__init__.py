"""hirl_mm: HIRL (hierarchical image representation learning) for mmpretrain."""
from .datasets.image_check import install_image_load_messages
from .utils.checkpoint_loading import install_checkpoint_reader
from .utils.checkpoint_safety import allow_mmengine_checkpoint_types

__version__ = '0.1.0'

# torch >= 2.6 loads checkpoints with weights_only=True; allow (only) what mmengine stores.
allow_mmengine_checkpoint_types()
# Unreadable checkpoint files are reported by name (never with torch's weights_only advice).
install_checkpoint_reader()
# An unreadable image is named with its sample index and how to find all such files.
install_image_load_messages()

from . import clustering, datasets, engine, evaluation, models  # noqa: E402,F401
