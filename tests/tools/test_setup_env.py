"""tools/setup_env.sh's decisions, without installing anything (HIRL_MM_SETUP_PLAN_ONLY):
the CPU / GPU variant is remembered in .venv/ so that the set-up `make test` and `make demo`
re-run keeps faiss-gpu, and Pythons outside the pinned stack's 3.10-3.12 are refused."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[2] / 'tools' / 'setup_env.sh'


@pytest.fixture
def repo(tmp_path):
    """A repository copy holding the script and a .venv/ whose python is this one."""
    (tmp_path / 'tools').mkdir()
    shutil.copy(SCRIPT, tmp_path / 'tools' / 'setup_env.sh')
    (tmp_path / '.venv' / 'bin').mkdir(parents=True)
    (tmp_path / '.venv' / 'bin' / 'python').symlink_to(sys.executable)
    return tmp_path


def _plan(repo: Path, *args: str, nvcc: bool = False):
    bin_dir = repo / 'fake_bin'
    bin_dir.mkdir(exist_ok=True)
    if nvcc:
        (bin_dir / 'nvcc').write_text('#!/bin/sh\nexit 0\n')
        (bin_dir / 'nvcc').chmod(0o755)
    env = dict(os.environ, HIRL_MM_SETUP_PLAN_ONLY='1', PATH=f'{bin_dir}:/usr/bin:/bin')
    return subprocess.run(['bash', str(repo / 'tools' / 'setup_env.sh'), *args], env=env,
                          capture_output=True, text=True)


def _variant(result) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_the_recorded_variant_is_kept_by_a_plain_re_run(repo):
    assert _variant(_plan(repo)) == 'variant=cpu faiss=faiss-cpu mmcv_ops=cpu'
    (repo / '.venv' / '.hirl_mm_variant').write_text('gpu\n')
    # What `make test` / `make demo` run when the requirements changed: no option.
    assert _variant(_plan(repo)) == 'variant=gpu faiss=faiss-gpu mmcv_ops=cpu'
    assert _variant(_plan(repo, nvcc=True)) == 'variant=gpu faiss=faiss-gpu mmcv_ops=cuda'
    assert _variant(_plan(repo, '--cpu', nvcc=True)) == 'variant=cpu faiss=faiss-cpu mmcv_ops=cpu'


def test_gpu_variant_and_bad_options(repo):
    assert _variant(_plan(repo, '--gpu')) == 'variant=gpu faiss=faiss-gpu mmcv_ops=cpu'
    bad = _plan(repo, '--cuda')
    assert bad.returncode == 2 and 'unknown option --cuda' in bad.stderr


def test_pythons_outside_the_pinned_stack_are_refused(repo):
    python = repo / '.venv' / 'bin' / 'python'
    python.unlink()
    python.write_text('#!/bin/sh\nexit 1\n')  # fails the 3.10-3.12 check
    python.chmod(0o755)
    result = _plan(repo)
    assert result.returncode == 1
    assert 'needs Python 3.10, 3.11 or 3.12' in result.stderr and 'PYTHON=' in result.stderr
