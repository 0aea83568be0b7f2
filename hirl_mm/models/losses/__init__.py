"""Losses of hirl_mm."""
from .dino_loss import DINOLoss
from .ibot_loss import iBOTLoss
from .semantic_path_loss import SemanticPathLoss, semantic_path_loss

__all__ = ['DINOLoss', 'iBOTLoss', 'SemanticPathLoss', 'semantic_path_loss']
