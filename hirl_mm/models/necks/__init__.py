"""Necks of hirl_mm."""
from .cls_avgpool_neck import ClsAvgPoolNeck
from .dino_neck import DINONeck, WeightNormLinear, iBOTNeck

__all__ = ['ClsAvgPoolNeck', 'DINONeck', 'iBOTNeck', 'WeightNormLinear']
