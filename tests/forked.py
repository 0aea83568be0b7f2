"""Run a function in a forked child process, to kill it or let it hang like a real one.

A fork inherits the test process's imports (torch, mmengine, hirl_mm: about 25 s of CPU
for a fresh interpreter on a 2-core machine), so a test of a killed or frozen training
process costs only the training. Importable because tests/conftest.py puts tests/ on
sys.path.
"""
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Callable, Optional

import torch


def fork(target: Callable[[], None], output: Path) -> int:
    """Start ``target()`` in a child process; returns its pid.

    Args:
        target: What the child runs; it exits 0 if that returns, 1 if it raises.
        output: File receiving the child's stdout and stderr (a traceback included).

    Returns:
        int: The child's pid (wait for it with :func:`wait`).
    """
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:  # the child: never returns into the test session
        stream = open(output, 'w', buffering=1)
        os.dup2(stream.fileno(), 1)
        os.dup2(stream.fileno(), 2)
        sys.stdout = sys.stderr = stream
        torch.set_num_threads(1)  # OpenMP thread pools do not survive a fork
        target()
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        os._exit(code)


def wait(pid: int, timeout: float) -> Optional[int]:
    """Wait up to ``timeout`` seconds for a child.

    Returns:
        int | None: Its exit code, ``-signal`` if a signal ended it, None if it still runs.
    """
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else \
                os.WEXITSTATUS(status)
        if time.monotonic() > deadline:
            return None
        time.sleep(0.1)


def kill(pid: int) -> None:
    """SIGKILL a child and reap it."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    os.waitpid(pid, 0)
