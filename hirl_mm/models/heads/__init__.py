"""Heads of hirl_mm."""
from .beit_projected_head import BEiTV1ProjectedHead
from .dino_head import DINOHead
from .ibot_head import iBOTHead
from .semantic_path_head import SemanticPathHead

__all__ = ['BEiTV1ProjectedHead', 'DINOHead', 'iBOTHead', 'SemanticPathHead']
