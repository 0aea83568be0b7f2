"""Stop a diverging training at once, before it writes a NaN checkpoint."""
from typing import Dict, Optional, Sequence

import torch
from mmengine import dist
from mmengine.hooks import Hook
from mmengine.runner import Runner
from mmpretrain.utils import get_ori_model

from hirl_mm.registry import HOOKS

__all__ = ['NonFiniteLossError', 'NonFiniteLossHook']


class NonFiniteLossError(RuntimeError):
    """The training loss stopped being finite."""


def _loss_terms(outputs: Optional[dict]) -> Dict[str, torch.Tensor]:
    """The logged loss terms of one iteration (mmengine sums the keys holding 'loss')."""
    if not isinstance(outputs, dict):
        return {}
    return {k: v.detach() for k, v in outputs.items()
            if 'loss' in k and isinstance(v, torch.Tensor)}


def _all_finite(tensors: Sequence[torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors)


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Stop training when the loss is NaN or infinite.

    After every iteration the loss terms are checked (on all ranks, which then agree).
    The run stops when the loss has been non-finite for ``max_consecutive`` iterations in
    a row, or at the first non-finite loss whose update left non-finite parameters
    (plain fp32 SGD / AdamW: nothing can recover from that). Loss-scaled mixed precision
    skips the steps of overflowing iterations, so a few of them leave the weights intact
    and are tolerated up to ``max_consecutive``. The hook runs before the checkpoint hook
    (priority ``VERY_HIGH``) and stops in the iteration, so the epoch's or iteration's
    checkpoint is not written with the broken weights; the last one written is kept.

    Args:
        max_consecutive (int): Non-finite iterations in a row that stop the run.
            Defaults to 3.
    """

    priority = 'VERY_HIGH'

    def __init__(self, max_consecutive: int = 3) -> None:
        if max_consecutive < 1:
            raise ValueError(f'max_consecutive must be >= 1, got {max_consecutive}.')
        self.max_consecutive = max_consecutive
        self.streak = 0

    def before_train(self, runner: Runner) -> None:
        self.streak = 0

    def after_train_iter(self, runner: Runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        terms = _loss_terms(outputs)
        if not terms:
            return
        device = next(iter(terms.values())).device
        bad = torch.tensor([0. if _all_finite(list(terms.values())) else 1.], device=device)
        dist.all_reduce(bad, op='max')  # every rank stops together
        if not bool(bad.item()):
            self.streak = 0
            return
        self.streak += 1
        params = [p.detach() for p in get_ori_model(runner.model).parameters()]
        broken = torch.tensor([0. if _all_finite(params) else 1.], device=device)
        dist.all_reduce(broken, op='max')
        if self.streak >= self.max_consecutive or bool(broken.item()):
            raise NonFiniteLossError(self._message(runner, terms, bool(broken.item())))

    def _message(self, runner: Runner, terms: Dict[str, torch.Tensor],
                 broken: bool) -> str:
        values = ', '.join(f'{k}: {v.float().mean().item():.4g}' for k, v in terms.items())
        why = ('the update left non-finite model parameters' if broken else
               f'{self.streak} iterations in a row (NonFiniteLossHook max_consecutive='
               f'{self.max_consecutive})')
        return (
            f'Training stopped at epoch {runner.epoch + 1}, iteration {runner.iter + 1}: the '
            f'loss is not finite ({values}); {why}. No checkpoint was written from this '
            f'state; the latest one in {runner.work_dir} (if any) is from before. Likely '
            f'causes: a learning rate too high for this batch size (lower optim_wrapper.'
            f'optimizer.lr, or add a warm-up to param_scheduler); fp16 overflow (use '
            f"AmpOptimWrapper with loss_scale='dynamic', or bf16); bad input data (an image "
            f'or label holding NaN or inf, a constant image normalised by a zero std). '
            f'Resume from that checkpoint once fixed.')
