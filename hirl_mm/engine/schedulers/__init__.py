from .weight_decay_scheduler import CosineAnnealingWeightDecayExceptFixed

__all__ = ['CosineAnnealingWeightDecayExceptFixed']
