"""Heads of hirl_mm."""
from .dino_head import DINOHead
from .ibot_head import iBOTHead
from .semantic_path_head import SemanticPathHead

__all__ = ['DINOHead', 'iBOTHead', 'SemanticPathHead']
