"""Registries of hirl_mm.

Every registry is a child of the matching mmpretrain registry, so that a config with
``default_scope='hirl_mm'`` finds mmpretrain's components (through the parent) and ours.
Components registered here are also mirrored into the mmpretrain parent under the same name
(unless that name is taken there), so a config that keeps ``default_scope='mmpretrain'``
and imports ``hirl_mm`` (``custom_imports``) finds them too.
"""
from typing import Optional, Type, Union

from mmengine.registry import Registry
from mmpretrain import registry as mmpretrain_registry


class MirroredRegistry(Registry):
    """A child registry that also registers its modules into its parent.

    mmengine looks a plain name up in the current scope and its ancestors only, never in
    children; mirroring lets ``default_scope='mmpretrain'`` configs use our names unscoped.
    """

    def _register_module(self,
                         module: Union[Type, callable],
                         module_name: Optional[Union[str, list]] = None,
                         force: bool = False) -> None:
        super()._register_module(module, module_name, force)
        if self.parent is None:
            return
        names = module_name or module.__name__
        for name in [names] if isinstance(names, str) else names:
            if name not in self.parent.module_dict:
                self.parent._register_module(module, name)


def _child(name: str, parent: Registry, locations: Optional[list] = None) -> Registry:
    """A mirrored child of an mmpretrain registry, scoped ``hirl_mm``."""
    return MirroredRegistry(name, parent=parent, scope='hirl_mm', locations=locations or [])


# Children of every mmpretrain registry, so that ``default_scope='hirl_mm'`` resolves what
# mmpretrain's own base configs name (visualizers, optimizer constructors, loops ...).
RUNNERS = _child('runner', mmpretrain_registry.RUNNERS)
RUNNER_CONSTRUCTORS = _child('runner constructor', mmpretrain_registry.RUNNER_CONSTRUCTORS)
LOOPS = _child('loop', mmpretrain_registry.LOOPS)
HOOKS = _child('hook', mmpretrain_registry.HOOKS, ['hirl_mm.engine.hooks'])
LOG_PROCESSORS = _child('log processor', mmpretrain_registry.LOG_PROCESSORS)
OPTIMIZERS = _child('optimizer', mmpretrain_registry.OPTIMIZERS)
OPTIM_WRAPPERS = _child('optim wrapper', mmpretrain_registry.OPTIM_WRAPPERS)
OPTIM_WRAPPER_CONSTRUCTORS = _child('optimizer wrapper constructor',
                                    mmpretrain_registry.OPTIM_WRAPPER_CONSTRUCTORS,
                                    ['hirl_mm.engine.optimizers'])
PARAM_SCHEDULERS = _child('parameter scheduler', mmpretrain_registry.PARAM_SCHEDULERS,
                          ['hirl_mm.engine.schedulers'])
DATASETS = _child('dataset', mmpretrain_registry.DATASETS, ['hirl_mm.datasets'])
DATA_SAMPLERS = _child('data sampler', mmpretrain_registry.DATA_SAMPLERS, ['hirl_mm.datasets'])
TRANSFORMS = _child('transform', mmpretrain_registry.TRANSFORMS, ['hirl_mm.datasets'])
MODELS = _child('model', mmpretrain_registry.MODELS, ['hirl_mm.models'])
MODEL_WRAPPERS = _child('model_wrapper', mmpretrain_registry.MODEL_WRAPPERS)
WEIGHT_INITIALIZERS = _child('weight initializer', mmpretrain_registry.WEIGHT_INITIALIZERS)
BATCH_AUGMENTS = _child('batch augment', mmpretrain_registry.BATCH_AUGMENTS)
TASK_UTILS = _child('task util', mmpretrain_registry.TASK_UTILS)
METRICS = _child('metric', mmpretrain_registry.METRICS, ['hirl_mm.evaluation'])
EVALUATORS = _child('evaluator', mmpretrain_registry.EVALUATORS)
VISUALIZERS = _child('visualizer', mmpretrain_registry.VISUALIZERS)
VISBACKENDS = _child('vis_backend', mmpretrain_registry.VISBACKENDS)


class OwnScopeRegistry(Registry):
    """A root registry that always builds in its own scope.

    mmengine builds in the registry of the current default scope; a root registry of
    ours has no node for ``'mmpretrain'`` (the scope of configs that keep mmpretrain's
    runtime), and every build warned "Failed to search registry with scope "mmpretrain"
    ..." before falling back to this very registry.
    """

    def build(self, cfg: dict, *args, **kwargs):
        if isinstance(cfg, dict) and '_scope_' not in cfg:
            cfg = dict(cfg, _scope_=self.scope)
        return super().build(cfg, *args, **kwargs)


# Clustering algorithms have no counterpart in mmpretrain: a root registry of our own.
CLUSTERERS = OwnScopeRegistry('clusterer', scope='hirl_mm', locations=['hirl_mm.clustering'])
