"""Put a pre-trained backbone into a downstream config, and check it loaded exactly.

A transfer run that silently starts from random weights (a renamed key, a deep stem, a
wrong prefix) wastes a cluster-day and reports a meaningless number. mmengine's
``Pretrained`` initialiser only logs missing keys; here every module that should receive
the weights is checked, and any missing or unexpected key stops the run.
"""
from typing import Dict, List, Set, Tuple

from mmengine.runner.checkpoint import _load_checkpoint
from torch import nn

from .teacher_backbone import has_teacher_backbone

BACKBONE_PREFIX = 'backbone.'


class PretrainedLoadingError(RuntimeError):
    """The pre-trained checkpoint does not match the modules it is meant to initialise."""


def _is_marker(init_cfg: object, prefix: str) -> bool:
    return isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained' \
        and init_cfg.get('prefix') == prefix


def inject_pretrained(model_cfg: dict, checkpoint: str,
                      prefix: str = BACKBONE_PREFIX) -> List[str]:
    """Point every ``Pretrained`` init_cfg with ``prefix`` of a model config at ``checkpoint``.

    Configs mark the modules that take the pre-trained backbone with
    ``init_cfg=dict(type='Pretrained', checkpoint=None, prefix='backbone.')`` (the backbone;
    for C4 detectors also ``roi_head.shared_head``, which holds res5). If nothing is marked,
    the backbone gets such an init_cfg.

    Args:
        model_cfg (dict): The ``model`` config, modified in place.
        checkpoint (str): Path or URL of the pre-trained checkpoint.
        prefix (str): Key prefix of the weights in the checkpoint.

    Returns:
        list[str]: Dotted module names that were pointed at the checkpoint.
    """
    names: List[str] = []

    def visit(cfg: dict, path: str) -> None:
        if _is_marker(cfg.get('init_cfg'), prefix):
            cfg['init_cfg']['checkpoint'] = checkpoint
            names.append(path)
        for key, value in cfg.items():
            if isinstance(value, dict) and key != 'init_cfg':
                visit(value, f'{path}.{key}' if path else key)

    visit(model_cfg, '')
    if not names:
        if 'backbone' not in model_cfg:
            raise PretrainedLoadingError('The model config has no `backbone` to load the '
                                         'pre-trained weights into.')
        model_cfg['backbone']['init_cfg'] = dict(type='Pretrained', checkpoint=checkpoint,
                                                 prefix=prefix)
        names.append('backbone')
    return names


def _submodule(model: nn.Module, name: str) -> nn.Module:
    try:
        return model.get_submodule(name)
    except AttributeError as error:
        raise PretrainedLoadingError(f'The model has no module {name!r} to check.') from error


def compare_keys(checkpoint_keys: Set[str],
                 module_keys: Dict[str, Set[str]]) -> Tuple[Dict[str, List[str]], List[str]]:
    """Which module keys the checkpoint lacks, and which checkpoint keys nothing takes.

    Args:
        checkpoint_keys (set[str]): Keys of the checkpoint, prefix stripped.
        module_keys (dict[str, set[str]]): State-dict keys per receiving module.

    Returns:
        tuple: ``({module: missing keys}, unexpected keys)``, sorted.
    """
    missing = {name: sorted(keys - checkpoint_keys) for name, keys in module_keys.items()}
    used = set().union(*module_keys.values()) if module_keys else set()
    return ({k: v for k, v in missing.items() if v}, sorted(checkpoint_keys - used))


def refuse_teacher_student_checkpoint(checkpoint: str, state: Dict[str, object],
                                      prefix: str = BACKBONE_PREFIX) -> None:
    """Stop on a raw DINO / iBOT checkpoint, whose ``backbone.*`` is the student's.

    Its keys would fit a ViT exactly (iBOT's up to ``mask_token``), and the run would
    silently start from the student, while the papers evaluate and transfer the teacher.

    Args:
        checkpoint (str): Path or URL of the checkpoint (for the message).
        state (dict): Its state dict.
        prefix (str): The prefix the caller loads.

    Raises:
        PretrainedLoadingError: If the checkpoint holds a teacher backbone next to
            ``prefix``, naming the converter.
    """
    if prefix == BACKBONE_PREFIX and has_teacher_backbone(state):
        raise PretrainedLoadingError(
            f'{checkpoint} is a DINO / iBOT pre-training checkpoint: its backbone.* is the '
            'student, and the papers evaluate and transfer the teacher. Write the '
            'teacher\'s backbone as backbone.* first:\n  python '
            'tools/model_converters/teacher_backbone.py '
            f'{checkpoint} <teacher_backbone.pth>\n(--source student for the student).')


def verify_pretrained_loading(model: nn.Module, checkpoint: str, module_names: List[str],
                              prefix: str = BACKBONE_PREFIX) -> Dict[str, int]:
    """Check that ``checkpoint``'s ``prefix`` weights fit the named modules exactly.

    Together the modules must take every checkpoint key, and each module must find all its
    keys in the checkpoint (e.g. a C4 detector: backbone = res2-4, shared head = res5).

    Args:
        model (nn.Module): The built (unwrapped) model.
        checkpoint (str): Path or URL of the checkpoint.
        module_names (list[str]): Dotted names of the receiving modules.
        prefix (str): Key prefix of the weights in the checkpoint.

    Returns:
        dict[str, int]: Number of loaded tensors per module.

    Raises:
        PretrainedLoadingError: On any missing or unexpected key, listing them.
    """
    loaded = _load_checkpoint(checkpoint, map_location='cpu')
    full_state = loaded.get('state_dict', loaded) if isinstance(loaded, dict) else {}
    refuse_teacher_student_checkpoint(checkpoint, full_state, prefix)
    return verify_pretrained_state(model, full_state, module_names, checkpoint, prefix)


def verify_pretrained_state(model: nn.Module, full_state: Dict[str, object],
                            module_names: List[str], source: str,
                            prefix: str = BACKBONE_PREFIX) -> Dict[str, int]:
    """:func:`verify_pretrained_loading` on a state dict already in memory.

    Args:
        model (nn.Module): The built (unwrapped) model.
        full_state (dict): The checkpoint's state dict (all prefixes).
        module_names (list[str]): Dotted names of the receiving modules.
        source (str): Where the state dict comes from (for the messages).
        prefix (str): Key prefix of the weights.

    Returns:
        dict[str, int]: Number of loaded tensors per module.

    Raises:
        PretrainedLoadingError: On any missing or unexpected key, listing them.
    """
    state = {k[len(prefix):]: v for k, v in full_state.items() if k.startswith(prefix)}
    if not state:
        raise PretrainedLoadingError(
            f'{source} has no weights under the prefix {prefix!r}; is it a backbone '
            f'checkpoint written by hirl_mm / mmpretrain?')
    module_keys = {name: set(_submodule(model, name).state_dict()) for name in module_names}
    missing, unexpected = compare_keys(set(state), module_keys)
    if missing or unexpected:
        lines = [f'The pre-trained weights in {source} do not fit the model exactly:']
        for name, keys in missing.items():
            lines.append(f'  {name}: {len(keys)} keys missing from the checkpoint, e.g. '
                         f'{keys[:5]}')
        if unexpected:
            lines.append(f'  {len(unexpected)} checkpoint keys loaded by no module, e.g. '
                         f'{unexpected[:5]}')
        lines.append('Fix the backbone config (type, depth, stem, style) to match the '
                     'pre-trained one; mark every module that takes part of the weights '
                     "with init_cfg=dict(type='Pretrained', checkpoint=None, "
                     "prefix='backbone.').")
        raise PretrainedLoadingError('\n'.join(lines))
    return {name: len(keys) for name, keys in module_keys.items()}
