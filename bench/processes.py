"""Child processes the benchmark starts: each in its own group, always stopped, measured."""

from __future__ import annotations

import ctypes
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Dict, List, Optional

STOP_GRACE_SECONDS = 15
_PR_SET_PDEATHSIG = 1
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the benchmark itself is killed (Linux only)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def start(command: List[str], env: Dict[str, str], cwd: Path, log: IO[bytes]) -> subprocess.Popen:
    """Starts a command in a new session (Ctrl-C reaches only the benchmark, which stops it)."""
    return subprocess.Popen(
        command,
        env=env,
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )


def stop(process: Optional[subprocess.Popen]) -> None:
    """SIGTERM to the whole group, SIGKILL after a grace period; safe to call twice."""
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()


@dataclass(frozen=True)
class Finished:
    """How a measured child process ended."""

    returncode: int
    wall_seconds: float
    peak_rss_mb: float


def run_measured(
    command: List[str],
    env: Dict[str, str],
    cwd: Path,
    log_path: Path,
    heartbeat: Optional[Callable[[float], None]] = None,
    heartbeat_seconds: float = 30.0,
) -> Finished:
    """Runs a command to the end: wall time and peak RSS (from wait4), output to a log file."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        started = time.monotonic()
        process = start(command, env, cwd, log)
        try:
            next_beat = started + heartbeat_seconds
            while True:
                pid, status, usage = os.wait4(process.pid, os.WNOHANG)
                if pid:
                    wall = time.monotonic() - started
                    process.returncode = os.waitstatus_to_exitcode(status)
                    return Finished(process.returncode, wall, usage.ru_maxrss / 1024)
                if heartbeat is not None and time.monotonic() >= next_beat:
                    heartbeat(time.monotonic() - started)
                    next_beat += heartbeat_seconds
                time.sleep(0.2)
        finally:
            stop(process)


def last_log_line(log_path: Path, limit: int = 100) -> str:
    """The last non-empty line of a log (progress bars end lines with \\r)."""
    try:
        with log_path.open("rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - 4096))
            tail = log.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    tail = _ANSI_ESCAPE.sub("", tail)
    lines = [line.strip() for line in tail.replace("\r", "\n").split("\n") if line.strip()]
    return lines[-1][:limit] if lines else ""


def proc_status_kb(pid: int, field: str) -> Optional[int]:
    """A `kB` field (VmRSS, VmHWM) of /proc/<pid>/status, or None if the process is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None
