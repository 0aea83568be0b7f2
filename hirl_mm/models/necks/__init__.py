"""Necks of hirl_mm."""
from .dino_neck import DINONeck, WeightNormLinear, iBOTNeck

__all__ = ['DINONeck', 'iBOTNeck', 'WeightNormLinear']
