"""EMA teachers / momentum encoders whose first update and buffers follow the HIRL code.

mmengine's ``BaseAveragedModel.update_parameters`` (0.10.7) does two things the HIRL
authors' momentum updates do not:

* at its first call (``steps == 0``) it *copies* every parameter of the online model, so
  whatever the averaged model was initialised with is lost. The authors' DINO / iBOT
  build the teacher head from its own random init and average it towards the student's
  from the first step (``hirl/models/dino.py``, ``ibot.py``: ``momentum_update_teacher``
  at the start of every forward, the first included).
* with ``update_buffers=False`` it copies every *buffer* of the online model (e.g. BN
  running statistics) into the averaged model at every call. The authors' key encoders
  keep their own buffers, updated by their own train-mode forwards; their momentum
  updates touch parameters only (``hirl/models/mocov3.py``
  ``_momentum_update_key_encoder``).

:class:`EMAUpdateMixin` re-implements ``update_parameters`` with both made options
(``first_update``, ``buffer_source``); with the defaults it does exactly what mmengine
does. :class:`TeacherEMA` is mmpretrain's ``CosineEMA`` with the mixin;
:func:`configure_ema` gives an averaged model an algorithm built itself (MoCo v3's
``momentum_encoder``, BYOL's ``target_net``, MoCo's ``encoder_k``) these options.
"""
from typing import Dict, Optional

import torch
from mmengine.model.averaged_model import BaseAveragedModel
from mmpretrain.models import CosineEMA
from torch import nn

from hirl_mm.registry import MODELS

__all__ = ['FIRST_UPDATES', 'BUFFER_SOURCES', 'EMAUpdateMixin', 'TeacherEMA',
           'configure_ema', 'averaged_child']

FIRST_UPDATES = ('copy', 'average')
BUFFER_SOURCES = ('online', 'own')


def _check(name: str, value: str, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f'{name}={value!r} is not one of {choices}.')


class EMAUpdateMixin:
    """``update_parameters`` of an averaged model with two options (set as attributes).

    Attributes:
        first_update (str): At the first update (``steps == 0``): ``'copy'`` the online
            parameters (mmengine) or ``'average'`` them into the averaged model's own
            initial values with the first step's momentum (the HIRL code's teacher head).
        buffer_source (str): ``'online'``: copy every buffer of the online model at each
            update (mmengine with ``update_buffers=False``); ``'own'``: copy them at the
            first update only, then leave them to the averaged model's own forwards (the
            HIRL code's key encoder).
    """

    first_update: str = 'copy'
    buffer_source: str = 'online'

    def update_parameters(self, model: nn.Module) -> None:
        """One update towards ``model`` (mmengine's, with the options above)."""
        _check('first_update', self.first_update, FIRST_UPDATES)
        _check('buffer_source', self.buffer_source, BUFFER_SOURCES)
        first = int(self.steps) == 0
        source: Dict[str, torch.Tensor] = (model.state_dict() if self.update_buffers
                                           else dict(model.named_parameters()))
        if first and self.first_update == 'copy':
            for key, averaged in self.avg_parameters.items():
                averaged.data.copy_(source[key].data)
        elif int(self.steps) % self.interval == 0:
            for key, averaged in self.avg_parameters.items():
                if averaged.dtype.is_floating_point:
                    self.avg_func(averaged.data, source[key].data.to(averaged.device),
                                  self.steps)
        if not self.update_buffers and (first or self.buffer_source == 'online'):
            for averaged, online in zip(self.module.buffers(), model.buffers()):
                averaged.data.copy_(online.data.to(averaged.device))
        self.steps += 1


@MODELS.register_module()
class TeacherEMA(EMAUpdateMixin, CosineEMA):
    """mmpretrain's ``CosineEMA`` whose first update may average and whose buffers may
    be its own (see :class:`EMAUpdateMixin`); with the defaults it is ``CosineEMA``.

    Args:
        model (nn.Module): The online model (deep-copied).
        momentum (float): ``1 - m`` at the first step. Defaults to 0.004.
        end_momentum (float): ``1 - m`` at the end of training. Defaults to 0.
        interval (int): Steps between two updates. Defaults to 1.
        device (torch.device, optional): Where the copy lives.
        update_buffers (bool): Average the buffers too (mmengine). Defaults to False.
        first_update (str): ``'copy'`` or ``'average'``. Defaults to ``'copy'``.
        buffer_source (str): ``'online'`` or ``'own'``. Defaults to ``'online'``.
    """

    def __init__(self, model: nn.Module, momentum: float = 0.004, end_momentum: float = 0.,
                 interval: int = 1, device: Optional[torch.device] = None,
                 update_buffers: bool = False, first_update: str = 'copy',
                 buffer_source: str = 'online') -> None:
        super().__init__(model, momentum=momentum, end_momentum=end_momentum,
                         interval=interval, device=device, update_buffers=update_buffers)
        configure_ema(self, first_update=first_update, buffer_source=buffer_source)


_CONFIGURABLE: Dict[type, type] = {}


def configure_ema(averaged: BaseAveragedModel, first_update: Optional[str] = None,
                  buffer_source: Optional[str] = None) -> BaseAveragedModel:
    """Set the options of :class:`EMAUpdateMixin` on an averaged model, in place.

    An averaged model without the mixin (e.g. the ``CosineEMA`` mmpretrain's MoCo v3
    builds) is switched to a subclass of its own class with the mixin in front (one per
    class, cached); its state dict, momentum schedule and ``avg_func`` are unchanged.

    Args:
        averaged (BaseAveragedModel): The averaged model.
        first_update (str, optional): ``'copy'`` / ``'average'``; None keeps it.
        buffer_source (str, optional): ``'online'`` / ``'own'``; None keeps it.

    Returns:
        BaseAveragedModel: ``averaged``.
    """
    if not isinstance(averaged, BaseAveragedModel):
        raise TypeError(f'configure_ema needs an mmengine BaseAveragedModel, got '
                        f'{type(averaged).__name__}.')
    for name, value, choices in (('first_update', first_update, FIRST_UPDATES),
                                 ('buffer_source', buffer_source, BUFFER_SOURCES)):
        if value is not None:
            _check(name, value, choices)
    if buffer_source == 'own' and averaged.update_buffers:
        raise ValueError(f'buffer_source="own" keeps the buffers of a {type(averaged).__name__}'
                         f' built with update_buffers=True, which averages them instead; '
                         f'use one or the other.')
    cls = type(averaged)
    if not isinstance(averaged, EMAUpdateMixin):
        if cls not in _CONFIGURABLE:
            _CONFIGURABLE[cls] = type(cls.__name__, (EMAUpdateMixin, cls), {
                '__module__': cls.__module__,
                '__doc__': f'{cls.__name__} with the options of EMAUpdateMixin.'})
        averaged.__class__ = _CONFIGURABLE[cls]
    if first_update is not None:
        averaged.first_update = first_update
    if buffer_source is not None:
        averaged.buffer_source = buffer_source
    return averaged


def averaged_child(model: nn.Module) -> Optional[BaseAveragedModel]:
    """The first direct child of ``model`` that is an averaged model (the EMA teacher /
    momentum encoder of an SSL algorithm), or None."""
    return next((module for module in model.children()
                 if isinstance(module, BaseAveragedModel)), None)
