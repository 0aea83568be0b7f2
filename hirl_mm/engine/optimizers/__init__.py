from .fixed_decay_constructor import FIXED_DECAY_KEY, FixedDecayGroupOptimWrapperConstructor

__all__ = ['FIXED_DECAY_KEY', 'FixedDecayGroupOptimWrapperConstructor']
