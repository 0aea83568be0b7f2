"""``--cfg-options`` parsing that explains what mmengine's ``DictAction`` cannot parse.

mmengine 0.10's ``DictAction`` parses numbers, strings, booleans, None and (nested) lists /
tuples of them. A ``dict(...)`` value (``"param_scheduler=[dict(type=LinearLR)]"``) sends
it into endless recursion (``RecursionError`` from deep inside argparse); a pair without
``=`` ends in ``ValueError: not enough values to unpack``.
"""
import re
from argparse import ArgumentParser, Namespace
from typing import Any, Optional, Sequence

from mmengine.config import DictAction

__all__ = ['CfgOptionsAction']

_DICT_CALL = re.compile(r'\bdict\s*\(')


def _dict_value_message(option: str, key: str) -> str:
    return (f'{option} {key}=...: a dict(...) value cannot be given on the command line '
            f'(mmengine parses only numbers, strings, True/False/None and [lists] / (tuples) '
            f'of them). Change the existing entries key by key instead (e.g. '
            f'{key}.0.begin=10: list items by index), or write a config that inherits this '
            f"one and sets it: _base_ = ['CONFIG.py'] then {key} = [dict(...)].")


class CfgOptionsAction(DictAction):
    """mmengine's ``DictAction`` that stops with a usage message on what it cannot parse."""

    def __call__(self, parser: ArgumentParser, namespace: Namespace,
                 values: Optional[Sequence[Any]], option_string: Optional[str] = None) -> None:
        option = option_string or '--cfg-options'
        for pair in values or []:
            if '=' not in pair:
                parser.error(f'{option} takes key=value pairs, got {pair!r} (no "="); quote '
                             f'values with spaces: key="[a,b]".')
            key, value = pair.split('=', 1)
            if _DICT_CALL.search(value):
                parser.error(_dict_value_message(option, key))
        try:
            super().__call__(parser, namespace, values, option_string)
        except RecursionError:  # another shape DictAction cannot take apart
            parser.error(f'{option}: mmengine could not parse {list(values or [])} (nested '
                         f'brackets it cannot split). Set the values in a config that '
                         f"inherits this one (_base_ = ['CONFIG.py']).")
