"""Backbones of hirl_mm."""
from .masked_vit import MaskedVisionTransformer

__all__ = ['MaskedVisionTransformer']
