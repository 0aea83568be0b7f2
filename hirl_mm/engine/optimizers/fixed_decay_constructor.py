"""An optimizer constructor that puts whole modules in param groups of their own, each with
one fixed weight decay.

The HIRL authors add the semantic heads to the optimizer after it is built
(``optimizer.add_param_group({'params': projections.parameters()})``,
``hirl/runners/pretrain/hirl.py``): one group with the optimizer's construction defaults
(DINO / iBOT: AdamW built with ``lr`` only, so weight decay 0.01 on every head parameter,
BN and biases included), which their weight-decay schedule (group 0 only) never touches,
while the lr schedule sets every group's lr.
"""
import difflib
import logging
from typing import Dict, List, Optional

from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor
from torch import nn

from hirl_mm.registry import OPTIM_WRAPPER_CONSTRUCTORS

__all__ = ['FIXED_DECAY_KEY', 'FixedDecayGroupOptimWrapperConstructor']

# The param-group entry that marks a group whose weight decay schedulers leave alone
# (see hirl_mm.engine.schedulers.CosineAnnealingWeightDecayExceptFixed).
FIXED_DECAY_KEY = 'fixed_weight_decay'

# The paramwise_cfg keys DefaultOptimWrapperConstructor (mmengine 0.10) reads.
DEFAULT_PARAMWISE_KEYS = ('custom_keys', 'bias_lr_mult', 'bias_decay_mult', 'norm_decay_mult',
                          'dwconv_decay_mult', 'flat_decay_mult', 'bypass_duplicate',
                          'dcn_offset_lr_mult')
GROUPS_KEY = 'fixed_decay_groups'
GROUP_OPTIONS = ('weight_decay', 'lr_mult')


def _close(name: str, known) -> str:
    """`` (did you mean [...]?)`` with the known names closest to ``name``, or ''."""
    close = difflib.get_close_matches(name, list(known), n=3)
    return f' (did you mean {close}?)' if close else ''


def _unknown(name: str, known, what: str) -> str:
    """An error message for an unknown name, with the closest known ones."""
    return f'{what} {name!r} is unknown{_close(name, known)}; known: {list(known)}.'


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class FixedDecayGroupOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's default constructor, plus modules whose parameters form one param group
    each, with a fixed weight decay.

    ``paramwise_cfg`` takes, besides the default constructor's keys,
    ``fixed_decay_groups``: a dict from a module name of the model (``'semantic_head'``,
    ``'neck.mlp'``; names as ``model.named_modules()`` gives them, without the ``module.``
    of a DDP wrapper) to the options of that module's group:

    - ``weight_decay`` (float, required): the group's weight decay, on every parameter of
      the module (no norm / bias / ``custom_keys`` rule applies inside it);
    - ``lr_mult`` (float): the group's lr is ``optimizer.lr * lr_mult``. Defaults to 1.

    Each group holds every trainable parameter under its module (frozen ones are left out,
    as the default constructor does) and is marked ``fixed_weight_decay=True``, which
    :class:`~hirl_mm.engine.schedulers.CosineAnnealingWeightDecayExceptFixed` respects
    (mmpretrain's ``CosineAnnealingWeightDecay`` and mmengine's generic parameter schedulers
    do not: they would schedule it like any other group). lr schedulers scale the group's lr
    like every other group's. The groups come after the default constructor's, in the
    order of ``fixed_decay_groups``; a module inside another listed module belongs to the
    innermost one. All other parameters are grouped exactly as the default constructor
    groups them.

    Errors (at build time): an unknown ``paramwise_cfg`` key or group option (with the
    closest names), a group without ``weight_decay``, a module name that the model does
    not have, and a module without trainable parameters.

    Example:
        >>> optim_wrapper = dict(
        ...     constructor='FixedDecayGroupOptimWrapperConstructor',
        ...     optimizer=dict(type='AdamW', lr=0.003, weight_decay=0.04),
        ...     paramwise_cfg=dict(
        ...         norm_decay_mult=0., bias_decay_mult=0.,
        ...         fixed_decay_groups=dict(semantic_head=dict(weight_decay=0.01))))
    """

    def _validate_cfg(self) -> None:
        super()._validate_cfg()
        for key in self.paramwise_cfg:
            if key not in DEFAULT_PARAMWISE_KEYS + (GROUPS_KEY, ):
                raise ValueError(_unknown(key, DEFAULT_PARAMWISE_KEYS + (GROUPS_KEY, ),
                                          'paramwise_cfg key'))
        groups = self.paramwise_cfg.get(GROUPS_KEY, {})
        if not isinstance(groups, dict):
            raise TypeError(f'paramwise_cfg.{GROUPS_KEY} must be a dict from module names to '
                            f'group options, got {type(groups).__name__}.')
        for name, options in groups.items():
            where = f'paramwise_cfg.{GROUPS_KEY}[{name!r}]'
            if not isinstance(name, str) or not name:
                raise ValueError(f'{where}: the key must be a module name of the model, '
                                 'not empty (that would be the whole model).')
            if not isinstance(options, dict):
                raise TypeError(f'{where} must be a dict of {GROUP_OPTIONS}, got '
                                f'{type(options).__name__}.')
            for option in options:
                if option not in GROUP_OPTIONS:
                    raise ValueError(f'{where}: ' + _unknown(option, GROUP_OPTIONS, 'option'))
            if 'weight_decay' not in options:
                raise ValueError(f'{where} needs weight_decay (the fixed weight decay of '
                                 'the group).')
            if self.base_lr is None and 'lr_mult' in options:
                raise ValueError(f'{where}: lr_mult needs the optimizer\'s lr.')

    @property
    def _fixed_groups(self) -> Dict[str, dict]:
        return self.paramwise_cfg.get(GROUPS_KEY, {})

    def _fixed_group_of(self, name: str) -> Optional[str]:
        """The innermost listed module that holds the module or parameter ``name``."""
        owners = [prefix for prefix in self._fixed_groups
                  if name == prefix or name.startswith(prefix + '.')]
        return max(owners, key=len) if owners else None

    def add_params(self,
                   params: List[dict],
                   module: nn.Module,
                   prefix: str = '',
                   is_dcn_module=None) -> None:
        """The default recursion, which skips the listed modules; the call for the model
        itself (``prefix=''``) then appends their groups."""
        if prefix and self._fixed_group_of(prefix) is not None:
            return  # in a fixed group
        if prefix or not self._fixed_groups:
            super().add_params(params, module, prefix, is_dcn_module)
            return
        fixed = self._fixed_params(module)
        super().add_params(params, module, prefix, is_dcn_module)
        params.extend(self._fixed_param_groups(fixed, params))

    def _fixed_params(self, model: nn.Module) -> Dict[str, List[nn.Parameter]]:
        """The trainable parameters of each listed module, checked."""
        module_names = [name for name, _ in model.named_modules() if name]
        for name in self._fixed_groups:
            if name not in module_names:
                raise ValueError(
                    f'paramwise_cfg.{GROUPS_KEY}: {type(model).__name__} has no module '
                    f'{name!r}{_close(name, module_names)}; is this config meant for '
                    'another model (e.g. a HIRL key on a model without HIRL)?')
        fixed: Dict[str, List[nn.Parameter]] = {name: [] for name in self._fixed_groups}
        for name, param in model.named_parameters():
            owner = self._fixed_group_of(name)
            if owner is None:
                continue
            if param.requires_grad:
                fixed[owner].append(param)
            else:
                print_log(f'{name} is skipped since its requires_grad=False',
                          logger='current', level=logging.WARNING)
        for name, members in fixed.items():
            if not members:
                raise ValueError(f'paramwise_cfg.{GROUPS_KEY}: module {name!r} has no '
                                 'trainable parameter.')
        return fixed

    def _fixed_param_groups(self, fixed: Dict[str, List[nn.Parameter]],
                            params: List[dict]) -> List[dict]:
        """One param group per listed module, marked for the weight-decay schedulers."""
        taken = {id(p) for group in params for p in group['params']}
        groups = []
        for name, members in fixed.items():
            if self.paramwise_cfg.get('bypass_duplicate', False):
                members = [p for p in members if id(p) not in taken]
            options = self._fixed_groups[name]
            group = dict(params=members, weight_decay=options['weight_decay'])
            group[FIXED_DECAY_KEY] = True
            if self.base_lr is not None:
                group['lr'] = self.base_lr * options.get('lr_mult', 1.)
            groups.append(group)
            settings = ', '.join(f'{k}={v}' for k, v in group.items() if k != 'params')
            print_log(f'paramwise_options -- {name} (fixed group of '
                      f'{sum(p.numel() for p in members)} parameters in {len(members)} '
                      f'tensors): {settings}', logger='current')
        return groups

