"""Running the GPU check's checks in isolation and writing ``report.json`` / ``report.md``.

A check is a function returning a dict with ``figures`` (name -> number), optionally
``info`` (name -> text) and ``tables`` (``dict(title, header, rows)``). It either returns
(status ``ok``), raises :class:`CheckSkipped` (``skipped``, with the reason: e.g. faiss has
no GPU here) or raises anything else (``failed``, with the error and its traceback's tail).
"""
import json
import os
import platform
import subprocess
import time
import traceback
from typing import Any, Callable, Dict, List, Optional

import torch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
STATUSES = ('ok', 'skipped', 'failed')
TRACEBACK_CHARS = 3000  # tail of a failed check's traceback kept in the report
ERROR_CHARS = 500  # head of its message (some errors quote a whole config)


class CheckSkipped(Exception):
    """A check (or the part of one) that cannot run here; the message says why."""


def run_check(name: str, fn: Callable[[], Dict[str, Any]], budget_s: float,
              time_left_s: float) -> Dict[str, Any]:
    """Run one check and record its outcome; never raises.

    Args:
        name (str): The check's name.
        fn (Callable): The check; returns ``figures`` and optionally ``info`` / ``tables``.
        budget_s (float): Seconds the check is sized to take (over it is flagged).
        time_left_s (float): Seconds left of the whole run; none left skips the check.

    Returns:
        Dict[str, Any]: ``name``, ``status``, ``seconds``, ``budget_s``, ``figures``,
        ``info``, ``tables`` and, when not ok, ``reason`` or ``error`` + ``traceback``.
    """
    result: Dict[str, Any] = dict(name=name, status='ok', seconds=0., budget_s=budget_s,
                                  figures={}, info={}, tables=[])
    if time_left_s <= 0:
        return dict(result, status='skipped', reason='the time limit of the whole run was '
                    'reached (--time-limit)')
    print(f'[gpu_check] {name} ...', flush=True)
    start = time.perf_counter()
    try:
        result.update(fn())
    except CheckSkipped as skip:
        result.update(status='skipped', reason=str(skip))
    except Exception as error:  # a check failing must not stop the others
        result.update(status='failed', error=f'{type(error).__name__}: {error}'[:ERROR_CHARS],
                      traceback=traceback.format_exc()[-TRACEBACK_CHARS:])
    result['seconds'] = time.perf_counter() - start
    if result['seconds'] > budget_s:
        result['info']['over budget'] = f'{result["seconds"]:.0f} s of a {budget_s:.0f} s budget'
    print(f'[gpu_check] {name}: {result["status"]} in {result["seconds"]:.1f} s', flush=True)
    if torch.cuda.is_available():  # the next check starts from an empty cache
        torch.cuda.empty_cache()
    return result


def _version(module: str) -> str:
    try:
        return __import__(module).__version__
    except Exception as error:  # not installed, or broken: say which
        return f'not available ({type(error).__name__})'


def _git_commit() -> str:
    try:
        commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=REPO, text=True,
                                capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'],
                               cwd=REPO, text=True, capture_output=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return 'unknown'
    return commit + (' (with uncommitted changes)' if dirty else '')


def machine_info(device: str) -> Dict[str, str]:
    """The machine and software the figures were measured on."""
    info = dict(device=device, python=platform.python_version(), cpus=str(os.cpu_count()),
                torch=torch.__version__, cuda=str(torch.version.cuda),
                cudnn=str(torch.backends.cudnn.version()))
    if device == 'cuda':
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory=f'{props.total_memory / 2**30:.1f} GiB',
                    gpus=str(torch.cuda.device_count()))
    faiss_version = _version('faiss')
    try:
        import faiss
        faiss_version += f', {faiss.get_num_gpus()} GPU(s) visible to faiss'
    except Exception:  # faiss missing: the version says so
        pass
    info.update(faiss=faiss_version, mmengine=_version('mmengine'), mmcv=_version('mmcv'),
                mmpretrain=_version('mmpretrain'), hirl_mm_commit=_git_commit())
    return info


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return 'yes' if value else 'no'
    if isinstance(value, float):
        return f'{value:,.4g}' if abs(value) < 1e4 else f'{value:,.0f}'
    return str(value)


def _table(header: List[str], rows: List[List[Any]]) -> List[str]:
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    return lines + ['| ' + ' | '.join(_cell(v) for v in row) + ' |' for row in rows]


def markdown(report: Dict[str, Any]) -> str:
    """The report as markdown: the machine, then one section per check."""
    checks = report['checks']
    counts = {s: sum(c['status'] == s for c in checks) for s in STATUSES}
    lines = ['# hirl_mm GPU check', '',
             f'`{report["command"]}`: {report["seconds"]:.0f} s in all (limit '
             f'{report["time_limit_s"]:.0f} s); ' +
             ', '.join(f'{n} {s}' for s, n in counts.items()) + '.', '']
    lines += _table(['machine', ''], [[k, v] for k, v in report['machine'].items()])
    for check in checks:
        lines += ['', f'## {check["name"]}: {check["status"]} ({check["seconds"]:.1f} s, '
                  f'budget {check["budget_s"]:.0f} s)', '']
        if check.get('reason'):
            lines.append(f'Skipped: {check["reason"]}')
        if check.get('error'):
            lines += [f'Error: `{check["error"]}`', '', '```', check['traceback'].rstrip(),
                      '```']
        lines += [f'- {k}: {v}' for k, v in check['info'].items()]
        for table in check['tables']:
            lines += ['', table['title'], ''] + _table(table['header'], table['rows'])
        if check['figures'] and not check['tables']:
            lines += [''] + _table(['figure', 'value'], list(check['figures'].items()))
    return '\n'.join(lines) + '\n'


def write_report(report: Dict[str, Any], out_dir: str) -> Optional[str]:
    """Write ``report.json`` and ``report.md`` into ``out_dir``; returns the markdown."""
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, 'report.json'), 'w') as f:
        json.dump(report, f, indent=2)
    text = markdown(report)
    with open(os.path.join(out_dir, 'report.md'), 'w') as f:
        f.write(text)
    return text
