"""Data transforms of hirl_mm."""
from .ibot_mask_generator import iBOTMaskGenerator

__all__ = ['iBOTMaskGenerator']
