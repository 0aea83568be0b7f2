"""Warm up a teacher temperature epoch by epoch, as DINO and iBOT do.

DINO (Caron et al., arXiv 2104.14294) sharpens the teacher's output with a temperature that
rises linearly from ``warmup_teacher_temp`` to ``teacher_temp`` over the first
``warmup_teacher_temp_epochs`` epochs and stays there afterwards: a too high temperature
makes the beginning of training unstable. iBOT (Zhou et al., arXiv 2111.07832) applies the
same schedule to its [CLS] and patch temperatures separately (two instances of this hook).
"""
from typing import Any, Optional, Tuple

import numpy as np
from mmengine.hooks import Hook
from mmengine.runner import Runner
from mmpretrain.utils import get_ori_model

from hirl_mm.engine.hooks.training_utils import require_epoch_based_loop
from hirl_mm.registry import HOOKS


@HOOKS.register_module()
class TeacherTempWarmupHook(Hook):
    """Set a float attribute of the model (a loss' teacher temperature) before every epoch.

    The value of (0-based) epoch ``e`` is ``np.linspace(warmup_temp, temp,
    warmup_epochs)[e]`` for ``e < warmup_epochs`` and ``temp`` afterwards, exactly DINO's
    ``teacher_temp_schedule``. It is computed from ``runner.epoch`` alone, so it is right
    after a resume. Each epoch's value is put in the message hub as
    ``train/<last component of attribute>`` (so the logger prints it) and logged when it
    changes.

    Args:
        warmup_temp (float): Temperature of the first epoch. Defaults to 0.04.
        temp (float): Temperature once the warm-up is over. Defaults to 0.07.
        warmup_epochs (int): Length of the linear warm-up, in epochs; 0 uses ``temp`` from
            the start. Defaults to 30.
        attribute (str): Dotted path of the float attribute, from the (unwrapped) model.
            Defaults to ``'head.loss_module.teacher_temp'``.
    """

    priority = 'NORMAL'

    def __init__(self,
                 warmup_temp: float = 0.04,
                 temp: float = 0.07,
                 warmup_epochs: int = 30,
                 attribute: str = 'head.loss_module.teacher_temp') -> None:
        if not isinstance(warmup_epochs, int) or warmup_epochs < 0:
            raise ValueError(f'warmup_epochs must be an int >= 0, got {warmup_epochs!r}.')
        if warmup_temp <= 0 or temp <= 0:
            raise ValueError(f'Temperatures must be > 0, got warmup_temp={warmup_temp}, '
                             f'temp={temp}.')
        if not isinstance(attribute, str) or not all(attribute.split('.')):
            raise ValueError(f'attribute must be a dotted path such as '
                             f'"head.loss_module.teacher_temp", got {attribute!r}.')
        self.warmup_temp = float(warmup_temp)
        self.temp = float(temp)
        self.warmup_epochs = warmup_epochs
        self.attribute = attribute
        self.scalar_name = f'train/{attribute.rsplit(".", 1)[-1]}'
        # DINO's warm-up part of ``teacher_temp_schedule``, bit for bit.
        self._warmup = np.linspace(self.warmup_temp, self.temp, warmup_epochs)
        self._last_value: Optional[float] = None

    def temperature_at(self, epoch: int) -> float:
        """The temperature of the (0-based) ``epoch``.

        Args:
            epoch (int): 0-based epoch index (``runner.epoch`` before the epoch runs).

        Returns:
            float: The scheduled temperature.
        """
        if epoch < self.warmup_epochs:
            return float(self._warmup[epoch])
        return self.temp

    def _resolve(self, runner: Runner) -> Tuple[Any, str]:
        """The object owning the attribute and the attribute's name, checked.

        Args:
            runner (Runner): The runner, whose model is unwrapped.

        Returns:
            tuple: ``(owner, name)`` such that ``getattr(owner, name)`` is the temperature.
        """
        model = owner = get_ori_model(runner.model)
        *parents, name = self.attribute.split('.')
        fix = ('Point TeacherTempWarmupHook(attribute=...) at the float temperature of '
               'your loss module, e.g. "head.loss_module.teacher_temp".')
        for depth, part in enumerate(parents):
            if not hasattr(owner, part):
                path = '.'.join(parents[:depth + 1])
                raise AttributeError(
                    f'TeacherTempWarmupHook: the model ({type(model).__name__}) has no '
                    f'"{path}" (from attribute="{self.attribute}"). {fix}')
            owner = getattr(owner, part)
        if not hasattr(owner, name):
            raise AttributeError(
                f'TeacherTempWarmupHook: {type(owner).__name__} has no attribute "{name}" '
                f'(from attribute="{self.attribute}"). {fix}')
        value = getattr(owner, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(
                f'TeacherTempWarmupHook: "{self.attribute}" holds a '
                f'{type(value).__name__}, not a float; the hook overwrites it with a Python '
                f'float every epoch. Keep the temperature as a float attribute of the loss '
                f'(not a tensor or buffer), or point attribute= at one. {fix}')
        return owner, name

    def _apply(self, runner: Runner) -> float:
        """Write the current epoch's temperature into the model; log it if it changed.

        Args:
            runner (Runner): The runner, whose ``epoch`` picks the value.

        Returns:
            float: The value set.
        """
        value = self.temperature_at(runner.epoch)
        owner, name = self._resolve(runner)
        setattr(owner, name, value)
        if value != self._last_value:
            runner.logger.info(f'{self.attribute} = {value:.6g} at epoch {runner.epoch + 1} '
                               f'(warm-up {self.warmup_temp:g} -> {self.temp:g} over '
                               f'{self.warmup_epochs} epochs)')
            self._last_value = value
        return value

    def before_train(self, runner: Runner) -> None:
        """Check the attribute and set the value of the epoch training (re)starts at."""
        require_epoch_based_loop(runner, type(self).__name__)
        self._last_value = None
        self._resolve(runner)  # fail now, with a clear message, not mid-training
        if self.warmup_epochs > runner.max_epochs:
            runner.logger.warning(
                f'TeacherTempWarmupHook: warmup_epochs={self.warmup_epochs} > max_epochs='
                f'{runner.max_epochs}, so {self.attribute} never reaches {self.temp:g}.')
        self._apply(runner)

    def before_train_epoch(self, runner: Runner) -> None:
        """Set this epoch's temperature and put it in the message hub for the logger."""
        value = self._apply(runner)
        # Not a loss/time key, so the LogProcessor prints the current value, unsmoothed.
        runner.message_hub.update_scalar(self.scalar_name, value)
