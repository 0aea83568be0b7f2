"""Keep the last layer of a DINO / iBOT head fixed during the first epochs.

DINO (Caron et al., arXiv 2104.14294) and iBOT (Zhou et al., arXiv 2111.07832) drop the
gradients of the projection head's last layer for the first ``freeze_last_layer`` epochs
(``cancel_gradients_last_layer`` in the DINO code: ``p.grad = None`` after the backward,
before the optimizer step), which stabilises the start of training. With no gradient the
optimizer skips the parameter entirely: no update, no weight decay, no optimizer state.

Which parameters: the HIRL code freezes every parameter whose name contains
``last_layer`` (``hirl/runners/pretrain/dino.py`` ``step_optimizer``), so also iBOT's
separate patch layer; this hook freezes the listed modules and, by default, every
optimised parameter whose name contains ``last_layer`` (here iBOT's
``neck.patch_last_layer`` with ``shared_head=False``).

When: the HIRL code cancels the gradients after the global-norm clip (its loss scaler
unscales, clips, then sets the fixed parameters' grads to None, then steps), so the
frozen gradients count in the clipped norm. This hook does the same: its optimizer step
pre-hook runs inside ``optimizer.step()``, after mmengine's ``OptimWrapper`` has
unscaled (AMP) and clipped (``clip_grad``).
"""
import functools
from typing import Any, List, Optional, Sequence, Union

from mmengine.hooks import Hook
from mmengine.runner import Runner
from mmpretrain.utils import get_ori_model
from torch import nn
from torch.optim import Optimizer

from hirl_mm.engine.hooks.training_utils import require_epoch_based_loop, torch_optimizers
from hirl_mm.registry import HOOKS


@HOOKS.register_module()
class FreezeLastLayerHook(Hook):
    """Give a submodule's parameters no update at all during the first epochs.

    At ``before_train`` a step pre-hook is registered on every torch optimizer of
    ``runner.optim_wrapper`` that holds parameters of ``module``; while
    ``runner.epoch < freeze_epochs`` it sets their ``.grad`` to ``None`` right before the
    optimizer step. This works the same with ``OptimWrapper``, ``AmpOptimWrapper`` (whose
    ``GradScaler.step`` calls ``optimizer.step``), gradient accumulation and
    ``OptimWrapperDict``. The decision reads ``runner.epoch`` at every step, so it is right
    after a resume.

    Args:
        module (str | Sequence[str]): Dotted path of the submodule, from the (unwrapped)
            model, or several paths (e.g. iBOT's separate [CLS] and patch last layers:
            ``['neck.last_layer', 'neck.patch_last_layer']``). Defaults to
            ``'neck.last_layer'``.
        freeze_epochs (int): Number of (first) epochs without updates; 0 disables the hook.
            Defaults to 1.
        name_contains (str, optional): Also freeze every parameter held by an optimizer
            whose name (from the unwrapped model) contains this string, as the HIRL / DINO
            / iBOT code does with ``'last_layer'``; the modules so added are logged. None:
            only ``module``. Defaults to ``'last_layer'``.
    """

    priority = 'NORMAL'

    def __init__(self,
                 module: Union[str, Sequence[str]] = 'neck.last_layer',
                 freeze_epochs: int = 1, name_contains: Optional[str] = 'last_layer'
                 ) -> None:
        paths = [module] if isinstance(module, str) else list(module)
        if not paths or not all(isinstance(p, str) and all(p.split('.')) for p in paths):
            raise ValueError(f'module must be a dotted submodule path such as '
                             f'"neck.last_layer" (or a list of them), got {module!r}.')
        if not isinstance(freeze_epochs, int) or freeze_epochs < 0:
            raise ValueError(f'freeze_epochs must be an int >= 0, got {freeze_epochs!r}.')
        if name_contains is not None and not (isinstance(name_contains, str)
                                              and name_contains):
            raise ValueError(f'name_contains must be a non-empty string or None, got '
                             f'{name_contains!r}.')
        self.name_contains = name_contains
        self.module = module
        self.paths = paths
        self._names = ', '.join(f'"{p}"' for p in paths)
        self.freeze_epochs = freeze_epochs
        self._handles: list = []
        self._unfreeze_logged = False

    def _resolve(self, runner: Runner, path: str) -> nn.Module:
        """The submodule at ``path``, checked to have parameters.

        Args:
            runner (Runner): The runner, whose model is unwrapped.
            path (str): Dotted submodule path.

        Returns:
            nn.Module: The submodule.
        """
        model = get_ori_model(runner.model)
        try:
            submodule = model.get_submodule(path)
        except AttributeError as e:
            raise AttributeError(
                f'FreezeLastLayerHook: the model ({type(model).__name__}) has no submodule '
                f'"{path}" ({e}). Set FreezeLastLayerHook(module=...) to the dotted path of '
                f'the head\'s last layer, e.g. "neck.last_layer" or "head.last_layer".'
            ) from e
        if not any(True for _ in submodule.parameters()):
            raise ValueError(f'FreezeLastLayerHook: "{path}" ({type(submodule).__name__}) '
                             f'has no parameters to freeze; point module= at the head\'s '
                             f'last layer.')
        return submodule

    def before_train(self, runner: Runner) -> None:
        """Check the module path and register the gradient-cancelling step pre-hooks."""
        require_epoch_based_loop(runner, type(self).__name__)
        self._remove_handles()
        self._unfreeze_logged = False
        own = {id(p) for path in self.paths for p in self._resolve(runner, path).parameters()}
        if self.freeze_epochs == 0:
            return
        optimizers = torch_optimizers(runner.optim_wrapper)
        added = self._named_matches(runner, optimizers, own)
        own.update(id(p) for p in added.values())
        modules = sorted({name.rsplit('.', 1)[0] for name in added} - set(self.paths))
        self._names = ', '.join(f'"{p}"' for p in self.paths + modules)
        for _, optimizer in optimizers:
            params = [p for group in optimizer.param_groups for p in group['params']
                      if id(p) in own]
            if params:
                self._handles.append(optimizer.register_step_pre_hook(
                    functools.partial(self._cancel_grads, runner, params)))
        if not self._handles:
            raise ValueError(
                f'FreezeLastLayerHook: no optimizer of runner.optim_wrapper holds a parameter '
                f'of {self._names}, so there is nothing to freeze; point module= at a layer '
                f'of the trained (student) network.')
        runner.logger.info(f'FreezeLastLayerHook: {self._names} gets no update during '
                           f'the first {self.freeze_epochs} epoch(s).')
        if modules:
            runner.logger.info(f'FreezeLastLayerHook: parameters named like '
                               f'"{self.name_contains}" added to module=: {sorted(added)}.')

    def _named_matches(self, runner: Runner, optimizers: list, own: set) -> dict:
        """Optimised parameters named like ``name_contains`` outside ``module``."""
        if self.name_contains is None:
            return {}
        optimised = {id(p) for _, optimizer in optimizers
                     for group in optimizer.param_groups for p in group['params']}
        return {name: p for name, p in get_ori_model(runner.model).named_parameters()
                if self.name_contains in name and id(p) in optimised and id(p) not in own}

    def before_train_epoch(self, runner: Runner) -> None:
        """Log once when the layer starts training."""
        if (self.freeze_epochs > 0 and not self._unfreeze_logged
                and runner.epoch >= self.freeze_epochs):
            runner.logger.info(f'FreezeLastLayerHook: {self._names} is trained from epoch '
                               f'{runner.epoch + 1} on.')
            self._unfreeze_logged = True

    def after_train(self, runner: Runner) -> None:
        """Unregister the step pre-hooks."""
        self._remove_handles()

    def _cancel_grads(self, runner: Runner, params: List[nn.Parameter], optimizer: Optimizer,
                      args: Any, kwargs: Any) -> Optional[Any]:
        """Step pre-hook: drop the gradients of ``params`` during the frozen epochs."""
        if runner.epoch < self.freeze_epochs:
            for p in params:
                p.grad = None  # torch optimizers skip parameters without a gradient
        return None

    def _remove_handles(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
