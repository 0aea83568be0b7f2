from .dino import DINO
from .hirl import HIRLMixin, build_hirl, hirl_class
from .ibot import iBOT

__all__ = ['DINO', 'iBOT', 'HIRLMixin', 'build_hirl', 'hirl_class']
