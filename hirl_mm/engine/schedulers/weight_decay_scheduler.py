"""A cosine weight-decay schedule that leaves the fixed-decay param groups alone."""
from mmpretrain.engine.schedulers import CosineAnnealingWeightDecay

from hirl_mm.engine.optimizers.fixed_decay_constructor import FIXED_DECAY_KEY
from hirl_mm.registry import PARAM_SCHEDULERS

__all__ = ['CosineAnnealingWeightDecayExceptFixed']


@PARAM_SCHEDULERS.register_module()
class CosineAnnealingWeightDecayExceptFixed(CosineAnnealingWeightDecay):
    """mmpretrain's ``CosineAnnealingWeightDecay`` (same arguments, same values; groups
    whose weight decay starts at 0 stay at 0), except that param groups marked
    ``fixed_weight_decay=True`` keep their weight decay.

    :class:`~hirl_mm.engine.optimizers.FixedDecayGroupOptimWrapperConstructor` marks the
    groups of its ``fixed_decay_groups`` (HIRL's semantic heads, which the HIRL authors
    give AdamW's default 0.01 while their 0.04 -> 0.4 cosine acts on the ViT). Without
    marked groups this scheduler is mmpretrain's.
    """

    def _get_value(self) -> list:
        values = super()._get_value()
        return [group[self.param_name] if group.get(FIXED_DECAY_KEY, False) else value
                for group, value in zip(self.optimizer.param_groups, values)]
