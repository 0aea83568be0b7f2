"""The documentation cannot go stale: every command it shows still runs as written.

For README.md, docs/**/*.md and configs/**/README.md:

* every fenced shell block (``bash``, ``shell``, ``sh``, ``console``) is split into
  commands; each ``tools/...`` script and ``configs/...`` path they name exists, each
  ``--flag`` given to a project tool is one that tool's argparse accepts (the wrappers
  ``tools/**/*.sh`` forward their flags to the Python tool they run), and each ``make``
  target is in the Makefile;
* every ``tools/...`` / ``configs/...`` path written as inline code exists;
* every relative link resolves to a file, and a ``#anchor`` into a Markdown page to one of
  its headings.

Placeholders are skipped: paths with ``<``, ``{``, ``*``, ``$`` or ``...``, and configs
that a Python block of the same page creates (its first line is ``# configs/...py``). The
options are read from the tools' sources (every ``add_argument`` of the tool and of the
project functions it calls to build its parser), so a renamed option fails here.
``test_checker_finds_*`` show the checks failing on a fixture page.
"""
import ast
import re
import shlex
from functools import lru_cache
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Set, Tuple

import pytest

REPO = Path(__file__).resolve().parents[2]
SHELL_LANGS = {'bash', 'shell', 'sh', 'console'}
FENCE = re.compile(r'^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)[^\n]*$')
PATH = re.compile(r'(?<![\w./-])(?:\./)?((?:tools|configs)/[\w./+-]*[\w+-])')
LINK = re.compile(r'(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)')
IMAGE = re.compile(r'!\[[^\]]*\]\(\s*([^)\s]+)\s*\)')
INLINE_CODE = re.compile(r'`([^`\n]+)`')
PLACEHOLDER = re.compile(r'[<>{}*$]|\.\.\.')

# Wrappers and the Python tool whose argparse receives their --flags.
WRAPPERS: Dict[str, Optional[str]] = {
    'tools/dist_train.sh': 'tools/train.py',
    'tools/slurm_train.sh': 'tools/train.py',
    'tools/dist_test.sh': 'tools/test.py',
    'tools/slurm_test.sh': 'tools/test.py',
    'tools/dist_run.sh': None,  # NPROC SCRIPT [args]: the script is an argument
    'tools/setup_env.sh': None,  # its own options, read from its `case` labels
    'tools/benchmarks/dist_train.sh': 'tools/train.py',
    'tools/benchmarks/slurm_train.sh': 'tools/train.py',
    'tools/benchmarks/classification/dist_train.sh': 'tools/train.py',
    'tools/benchmarks/classification/dist_train_linear.sh': 'tools/train.py',
    'tools/benchmarks/classification/dist_train_semi.sh': 'tools/train.py',
    'tools/benchmarks/classification/slurm_train.sh': 'tools/train.py',
    'tools/benchmarks/classification/dist_knn.sh': 'tools/benchmarks/classification/knn.py',
    'tools/benchmarks/classification/dist_cluster_eval.sh':
        'tools/benchmarks/classification/cluster_eval.py',
    'tools/benchmarks/classification/dist_eval.sh': None,  # SCRIPT CONFIG CKPT GPUS [args]
    'tools/benchmarks/mmdetection/dist_train.sh': 'tools/train.py',
    'tools/benchmarks/mmdetection/slurm_train.sh': 'tools/train.py',
    'tools/benchmarks/mmsegmentation/dist_train.sh': 'tools/train.py',
    'tools/benchmarks/mmsegmentation/slurm_train.sh': 'tools/train.py',
}


def doc_files() -> List[Path]:
    files = [REPO / 'README.md', *sorted((REPO / 'docs').rglob('*.md')),
             *sorted((REPO / 'configs').rglob('README.md'))]
    return [f for f in files if f.is_file() and not {'_build', '_generated'} & set(f.parts)]


# ------------------------------------------------------------------------ reading pages
def fenced_blocks(text: str) -> Iterator[Tuple[str, str, int]]:
    """``(language, body, first line number)`` of every fenced code block."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, lang, start = match['fence'], match['lang'].lower(), i + 1
        body = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i])
            i += 1
        i += 1
        indent = len(match['indent'])
        yield lang, '\n'.join(line[indent:] for line in body), start + 1


def prose(text: str) -> str:
    """The page without its fenced blocks (for inline code and links)."""
    out, inside, fence = [], False, ''
    for line in text.splitlines():
        match = FENCE.match(line)
        if match and (not inside or line.strip().startswith(fence)):
            inside, fence = (not inside), match['fence']
            out.append('')
            continue
        out.append('' if inside else line)
    return '\n'.join(out)


def shell_commands(body: str) -> List[Tuple[int, List[str]]]:
    """The commands of a shell block as ``(line offset, tokens)`` (continuations joined,
    comments, ``$`` prompts and heredoc bodies dropped, split at ``&&``, ``||``, ``;``, ``|``)."""
    logical: List[Tuple[int, str]] = []
    for offset, line in enumerate(body.splitlines()):
        if logical and logical[-1][1].endswith('\\'):
            logical[-1] = (logical[-1][0], logical[-1][1][:-1] + ' ' + line)
        else:
            logical.append((offset, line))
    commands: List[Tuple[int, List[str]]] = []
    heredoc_end = None
    for offset, line in logical:
        if heredoc_end is not None:
            if line.strip() == heredoc_end:
                heredoc_end = None
            continue
        heredoc = re.search(r"<<-?\s*['\"]?(\w+)['\"]?", line)
        if heredoc:
            heredoc_end = heredoc.group(1)
        line = re.sub(r'^\s*\$\s+', '', line)
        try:
            lexer = shlex.shlex(line, posix=True, punctuation_chars=';&|')
            lexer.whitespace_split = True
            lexer.commenters = '#'
            tokens = list(lexer)
        except ValueError:  # an unbalanced quote: check the plain words
            tokens = line.split('#', 1)[0].split()
        current: List[str] = []
        for token in tokens + [';']:
            if token and set(token) <= set(';&|'):
                if current:
                    commands.append((offset, current))
                current = []
            else:
                current.append(token)
    return commands


def created_configs(text: str) -> Set[str]:
    """Configs a page asks the reader to write: Python blocks starting ``# configs/...``."""
    names = set()
    for lang, body, _ in fenced_blocks(text):
        first = body.strip().splitlines()[0] if body.strip() else ''
        match = re.match(r'#\s*((?:configs)/\S+\.py)', first)
        if lang == 'python' and match:
            names.add(match.group(1))
    return names


# ------------------------------------------------------------------------ the tools' options
# Read statically (ast), without importing the tools: every option string given to an
# `add_argument` call in the tool, and in the project functions the tool calls to build its
# parser (e.g. hirl_mm.utils.launch.add_launcher_args), followed through their imports.
def _module_path(module: str) -> Optional[Path]:
    if not module.startswith('hirl_mm'):
        return None
    base = REPO / module.replace('.', '/')
    for path in (base.with_suffix('.py'), base / '__init__.py'):
        if path.is_file():
            return path
    return None


def _imports(tree: ast.Module, path: Path) -> Dict[str, Tuple[Path, str]]:
    """``{local name: (module file, name there)}`` for imports of project modules (and of
    sibling modules of a tool, imported by the tool's folder being on the path)."""
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.level:  # relative import inside hirl_mm
                package = path.parent
                for _ in range(node.level - 1):
                    package = package.parent
                target = package.joinpath(*node.module.split('.'))
                module_file = next((f for f in (target.with_suffix('.py'),
                                                target / '__init__.py') if f.is_file()), None)
            else:
                module_file = (_module_path(node.module)
                               or next((f for f in [path.parent / (node.module.replace(
                                   '.', '/') + '.py')] if f.is_file()), None))
            if module_file is not None:
                for alias in node.names:
                    found[alias.asname or alias.name] = (module_file, alias.name)
    return found


def _option_strings(call: ast.Call) -> Set[str]:
    return {arg.value for arg in call.args
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
            and arg.value.startswith('-')}


@lru_cache(maxsize=None)
def _function_options(path: Path, name: Optional[str]) -> frozenset:
    """Options added in ``path`` (the whole module when ``name`` is None, else in its
    function ``name``), and in the project functions called there."""
    tree = ast.parse(path.read_text())
    if name is None:
        body: ast.AST = tree
    else:
        body = next((n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)
                     and n.name == name), None)
        if body is None:  # re-exported: follow the package's import
            target = _imports(tree, path).get(name)
            return _function_options(*target) if target else frozenset()
    imported = _imports(tree, path)
    local = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    options: Set[str] = set()
    for node in ast.walk(body):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == 'add_argument':
            options |= _option_strings(node)
        elif isinstance(func, ast.Name) and func.id != name:
            if func.id in imported:
                options |= _function_options(*imported[func.id])
            elif func.id in local and name is not None:
                options |= _function_options(path, func.id)
    return frozenset(options)


@lru_cache(maxsize=None)
def tool_options(tool: str) -> Optional[frozenset]:
    """Every option string a project tool accepts (None: not known statically)."""
    path = REPO / tool
    if tool.endswith('.sh'):
        wrapped = WRAPPERS.get(tool)
        if wrapped is not None:
            return tool_options(wrapped)
        # Options a script parses itself: `--name)` labels of its `case` statements.
        return frozenset(re.findall(r'^\s*(--[\w-]+)(?:\|[^)]*)?\)', path.read_text(),
                                    flags=re.M)) or None
    return _function_options(path, None) | {'-h', '--help'}


def makefile_targets() -> Set[str]:
    return set(re.findall(r'^([\w.-]+)\s*:(?!=)', (REPO / 'Makefile').read_text(), re.M))


# ------------------------------------------------------------------------ the checks
def _is_placeholder(path: str) -> bool:
    return bool(PLACEHOLDER.search(path))


def check_path(path: str, where: str, allowed: Set[str]) -> List[str]:
    path = path.rstrip('.,:;')
    if _is_placeholder(path) or path in allowed:
        return []
    if path.endswith('/'):
        path = path[:-1]
    if (REPO / path).exists():
        return []
    return [f'{where}: {path} does not exist']


def check_command(tokens: List[str], where: str, allowed: Set[str]) -> List[str]:
    problems: List[str] = []
    if tokens and tokens[0] == 'make':
        targets = makefile_targets()
        problems += [f'{where}: `make {t}`: no such Makefile target' for t in tokens[1:]
                     if not t.startswith('-') and '=' not in t and t not in targets]
        return problems
    tool = None
    for position, token in enumerate(tokens):
        for path in PATH.findall(token):
            problems += check_path(path, where, allowed)
        match = re.fullmatch(r'(?:\./)?(tools/[\w./-]+\.(?:py|sh))', token)
        if tool is None and match and (REPO / match.group(1)).is_file():
            tool, rest = match.group(1), tokens[position + 1:]
    if tool is None:
        return problems
    options = tool_options(tool)
    if options is None:
        return problems
    for token in rest:
        if token.startswith('--') and len(token) > 2:
            flag = token.split('=', 1)[0]
            if flag not in options:
                problems.append(f'{where}: {tool} has no option {flag}')
    return problems


def _slug(heading: str) -> str:
    """The anchor of a heading (GitHub's and myst's ``heading_anchors``)."""
    text = re.sub(r'`|\*\*|__', '', heading.strip().lower())
    text = re.sub(r'\[([^\]]*)\]\([^)]*\)', r'\1', text)
    text = re.sub(r'[^\w\- ]', '', text)
    return text.replace(' ', '-')


def anchors(page: Path) -> Set[str]:
    return {_slug(m.group(1)) for m in re.finditer(r'^#{1,6}\s+(.+?)\s*#*$',
                                                   prose(page.read_text()), re.M)}


def _name(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else path.name


def check_link(target: str, page: Path, where: str) -> List[str]:
    if re.match(r'^[a-z][a-z0-9+.-]*:', target, re.I):  # http:, https:, mailto: ...
        return []
    file_part, _, anchor = target.partition('#')
    dest = (page.parent / file_part).resolve() if file_part else page
    if not dest.exists():
        return [f'{where}: link target {target} does not exist']
    if anchor and dest.suffix == '.md' and anchor not in anchors(dest):
        return [f'{where}: {_name(dest)} has no heading #{anchor}']
    return []


def check_page(page: Path, text: Optional[str] = None) -> List[str]:
    """Every problem of one page (``text`` overrides the file's content)."""
    text = page.read_text() if text is None else text
    name = _name(page)
    allowed = created_configs(text)
    problems: List[str] = []
    for lang, body, line in fenced_blocks(text):
        if lang in SHELL_LANGS:
            for offset, tokens in shell_commands(body):
                problems += check_command(tokens, f'{name}:{line + offset}', allowed)
    plain = prose(text)
    for number, row in enumerate(plain.splitlines(), 1):
        where = f'{name}:{number}'
        for code in INLINE_CODE.findall(row):
            for path in PATH.findall(code):
                problems += check_path(path, where, allowed)
        for target in LINK.findall(row) + IMAGE.findall(row):
            problems += check_link(target, page, where)
    return problems


# ------------------------------------------------------------------------ the tests
def test_there_are_pages_to_check():
    pages = {str(p.relative_to(REPO)) for p in doc_files()}
    assert 'README.md' in pages and 'configs/hirl/README.md' in pages
    assert any(p.startswith('docs/en/') for p in pages)


@pytest.mark.parametrize('page', doc_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_documented_commands_paths_and_links_are_real(page):
    problems = check_page(page)
    assert not problems, '\n'.join(problems)


def test_every_shell_tool_is_known():
    """A new wrapper script must say which tool its flags go to (WRAPPERS)."""
    scripts = {str(p.relative_to(REPO)) for p in (REPO / 'tools').rglob('*.sh')}
    assert scripts == set(WRAPPERS)


FIXTURE_PAGE = """# A page

```bash
python tools/train.py configs/hirl/simclr_r50.py --work-dir work_dirs/x --resume
python tools/train.py configs/hirl/simclr_r50.py --workdir work_dirs/x
tools/dist_train.sh configs/hirl/simclr_resnet50.py 8 --auto-scale-lr
python tools/analysis_tools/visualize_hierarchy.py CONFIG CKPT --per-row 8 --top-k 3
make demo && make docs && make deploy
```

```python
# configs/my_data/mine.py
_base_ = '../demo/hirl_simclr_tiny-resnet18_fashion-mnist.py'
```

Train `configs/my_data/mine.py`, or `configs/hirl/<method>_r50.py`; see
`tools/analysis_tools/hirl_report.py` and `tools/analysis_tools/old_report.py`,
[the FAQ](faq.md#no-such-heading), [README](README.md) and [a heading](#a-page).
"""


def test_checker_finds_renamed_flags_missing_paths_and_dead_links(tmp_path):
    """The checks fail where a documented flag, path or link is renamed."""
    page = tmp_path / 'page.md'
    page.write_text(FIXTURE_PAGE)
    (tmp_path / 'faq.md').write_text('# FAQ\n\n## A question\n')
    problems = check_page(page)
    found = '\n'.join(problems)
    assert 'tools/train.py has no option --workdir' in found
    assert 'configs/hirl/simclr_resnet50.py does not exist' in found
    assert 'tools/analysis_tools/visualize_hierarchy.py has no option --top-k' in found
    assert '`make deploy`: no such Makefile target' in found
    assert 'tools/analysis_tools/old_report.py does not exist' in found
    assert 'faq.md has no heading #no-such-heading' in found
    assert 'link target README.md does not exist' in found
    assert len(problems) == 7, found  # and nothing else: real flags, paths, placeholders
