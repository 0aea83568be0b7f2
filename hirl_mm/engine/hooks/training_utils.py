"""Checks and lookups the training hooks share: the loop counts epochs, the torch optimizers
under an mmengine optimizer wrapper."""
from typing import List, Tuple

from mmengine.optim import OptimWrapper, OptimWrapperDict
from mmengine.runner import IterBasedTrainLoop, Runner
from torch.optim import Optimizer

__all__ = ['require_epoch_based_loop', 'torch_optimizers']


def require_epoch_based_loop(runner: Runner, hook_name: str) -> None:
    """Raise unless the train loop counts epochs.

    ``IterBasedTrainLoop`` has a ``max_epochs`` (always 1) but keeps ``runner.epoch`` at 0,
    which would silently freeze an epoch schedule at its first value.

    Args:
        runner (Runner): The runner about to train.
        hook_name (str): Named in the error message.
    """
    loop = runner.train_loop
    if isinstance(loop, IterBasedTrainLoop) or not hasattr(loop, 'max_epochs'):
        raise TypeError(f'{hook_name} follows an epoch schedule: use an epoch-based train '
                        f'loop (train_cfg=dict(type="EpochBasedTrainLoop", max_epochs=...)).')


def torch_optimizers(optim_wrapper: OptimWrapper) -> List[Tuple[str, Optimizer]]:
    """The torch optimizers under an mmengine optimizer wrapper.

    Args:
        optim_wrapper (OptimWrapper): ``runner.optim_wrapper``: an ``OptimWrapper`` (or a
            subclass such as ``AmpOptimWrapper``) or an ``OptimWrapperDict``.

    Returns:
        list[tuple[str, Optimizer]]: ``(name, optimizer)`` pairs; the name is the key in an
        ``OptimWrapperDict`` and ``''`` for a single wrapper.
    """
    # OptimWrapperDict subclasses OptimWrapper but has no ``optimizer`` of its own.
    if isinstance(optim_wrapper, OptimWrapperDict):
        return [(name, wrapper.optimizer) for name, wrapper in optim_wrapper.items()]
    if isinstance(optim_wrapper, OptimWrapper):
        return [('', optim_wrapper.optimizer)]
    raise TypeError(f'Expected runner.optim_wrapper to be an mmengine OptimWrapper or '
                    f'OptimWrapperDict (built from optim_wrapper=dict(...)), got '
                    f'{type(optim_wrapper).__name__}.')
