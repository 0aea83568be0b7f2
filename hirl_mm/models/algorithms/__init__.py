from .hirl import HIRLMixin, build_hirl, hirl_class

__all__ = ['HIRLMixin', 'build_hirl', 'hirl_class']
