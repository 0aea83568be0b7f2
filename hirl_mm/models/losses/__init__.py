"""Losses of hirl_mm."""
from .semantic_path_loss import SemanticPathLoss, semantic_path_loss

__all__ = ['SemanticPathLoss', 'semantic_path_loss']
