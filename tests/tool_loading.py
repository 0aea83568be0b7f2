"""Import a script of tools/ as a module (tools/ is not a package), to call its ``main``
or ``parse_args`` in process. Importable because tests/conftest.py puts tests/ on sys.path.
"""
import importlib.util
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]


def load_tool(path: str) -> ModuleType:
    """The tool at ``path`` (relative to the repository root, e.g. ``'tools/train.py'``),
    imported under a name of its own."""
    name = 'tool_' + path.replace('/', '_').replace('.', '_')
    spec = importlib.util.spec_from_file_location(name, REPO / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
