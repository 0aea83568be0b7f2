"""Clip every parameter's gradient to a maximum norm on its own, as the original DINO and
iBOT repositories do.

facebookresearch/dino and bytedance/ibot clip gradients per parameter (``clip_gradients``
in the DINO code): each gradient whose L2 norm exceeds ``max_norm`` is scaled by
``max_norm / (norm + 1e-6)``. The HIRL authors' runner clips the global norm of all
gradients instead (mmengine's ``optim_wrapper.clip_grad``), which the shipped DINO / iBOT
configs use; this hook is the option for the original repositories' recipe.
"""
import functools
from typing import Any, Iterable, Optional

import torch
from mmengine.hooks import Hook
from mmengine.optim import OptimWrapperDict
from mmengine.runner import Runner
from torch import Tensor, nn
from torch.optim import Optimizer

from hirl_mm.engine.hooks.training_utils import torch_optimizers
from hirl_mm.registry import HOOKS


@torch.no_grad()
def clip_grads_per_param(params: Iterable[nn.Parameter], max_norm: float) -> Optional[Tensor]:
    """Scale, in place, each gradient whose L2 norm exceeds ``max_norm`` down to it.

    For each parameter with a gradient: ``coef = max_norm / (||grad||_2 + 1e-6)`` and the
    gradient is multiplied by ``coef`` if ``coef < 1`` (DINO's ``clip_gradients``). The
    comparison stays on the device (no host sync per parameter).

    Args:
        params (Iterable[nn.Parameter]): Parameters; those without ``.grad`` are skipped.
        max_norm (float): Largest L2 norm a single parameter's gradient may keep.

    Returns:
        Tensor, optional: The global L2 norm of the gradients before clipping, or ``None``
        when no parameter has a gradient.
    """
    norms = []
    for p in params:
        if p.grad is None:
            continue
        norm = torch.linalg.vector_norm(p.grad, 2)
        coef = max_norm / (norm + 1e-6)
        # ``where`` rather than ``clamp``: a NaN coefficient leaves the gradient alone, as
        # DINO's ``if coef < 1`` does.
        p.grad.mul_(torch.where(coef < 1, coef, torch.ones_like(coef)))
        norms.append(norm)
    if not norms:
        return None
    device = norms[0].device
    return torch.linalg.vector_norm(torch.stack([n.to(device) for n in norms]), 2)


@HOOKS.register_module()
class PerParamGradClipHook(Hook):
    """Clip each parameter's gradient separately right before every optimizer step.

    At ``before_train`` a step pre-hook is registered on every torch optimizer of
    ``runner.optim_wrapper`` (``OptimWrapper``, ``AmpOptimWrapper`` or each member of an
    ``OptimWrapperDict``). Under AMP it sees unscaled gradients, because ``GradScaler.step``
    unscales before it calls ``optimizer.step`` (and skips the step on inf/NaN). Use it
    instead of ``optim_wrapper=dict(clip_grad=...)``, not with it.

    Args:
        max_norm (float): Largest L2 norm a single parameter's gradient may keep (DINO's
            ``clip_grad``). Defaults to 3.0.
        log_grad_norm (bool): Put the global gradient norm before clipping in the message
            hub as ``train/grad_norm`` (``train/<name>.grad_norm`` for each optimizer of an
            ``OptimWrapperDict``), smoothed and printed by the logger. Costs one host sync
            per step. Defaults to True.
    """

    priority = 'NORMAL'

    def __init__(self, max_norm: float = 3.0, log_grad_norm: bool = True) -> None:
        if not max_norm > 0:
            raise ValueError(f'max_norm must be > 0, got {max_norm!r}; to train without '
                             f'clipping, leave PerParamGradClipHook out.')
        self.max_norm = float(max_norm)
        self.log_grad_norm = log_grad_norm
        self._handles: list = []

    def before_train(self, runner: Runner) -> None:
        """Register the clipping step pre-hooks on the optimizers."""
        self._remove_handles()
        wrappers = (list(runner.optim_wrapper.values())
                    if isinstance(runner.optim_wrapper, OptimWrapperDict)
                    else [runner.optim_wrapper])
        if any(getattr(w, 'clip_grad_kwargs', None) for w in wrappers):
            runner.logger.warning(
                'PerParamGradClipHook: optim_wrapper also has clip_grad set, so gradients '
                'are clipped twice (global norm, then per parameter); remove clip_grad to '
                'follow DINO/iBOT.')
        for name, optimizer in torch_optimizers(runner.optim_wrapper):
            if (getattr(optimizer, '_step_supports_amp_scaling', False)
                    and any(getattr(w, 'loss_scaler', None) is not None for w in wrappers)):
                # GradScaler leaves gradients scaled for such (fused) optimizers.
                raise ValueError(
                    f'PerParamGradClipHook: {type(optimizer).__name__} unscales gradients '
                    f'inside its fused step, so the hook would clip scaled gradients under '
                    f'AMP. Use a non-fused optimizer (fused=False).')
            scalar = f'train/{name}.grad_norm' if name else 'train/grad_norm'
            self._handles.append(optimizer.register_step_pre_hook(
                functools.partial(self._clip, runner, scalar)))

    def after_train(self, runner: Runner) -> None:
        """Unregister the step pre-hooks."""
        self._remove_handles()

    def _clip(self, runner: Runner, scalar: str, optimizer: Optimizer, args: Any,
              kwargs: Any) -> Optional[Any]:
        """Step pre-hook: clip the gradients of the optimizer's parameters."""
        params = [p for group in optimizer.param_groups for p in group['params']]
        total = clip_grads_per_param(params, self.max_norm)
        if self.log_grad_norm and total is not None:
            runner.message_hub.update_scalar(scalar, float(total))
        return None

    def _remove_handles(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
