"""Necks of hirl_mm."""
from .beit_token_projector import BEiTTokenProjector
from .cls_avgpool_neck import ClsAvgPoolNeck
from .dino_neck import DINONeck, WeightNormLinear, iBOTNeck

__all__ = ['BEiTTokenProjector', 'ClsAvgPoolNeck', 'DINONeck', 'iBOTNeck', 'WeightNormLinear']
