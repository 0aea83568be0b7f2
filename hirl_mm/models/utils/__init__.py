"""Model utilities of hirl_mm."""
from .semantic_paths import lift_paths, sample_negative_paths

__all__ = ['lift_paths', 'sample_negative_paths']
