"""Heads of hirl_mm."""
from .semantic_path_head import SemanticPathHead

__all__ = ['SemanticPathHead']
