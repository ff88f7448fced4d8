"""Processes under test: start pinned with taskset, wait until they answer, measure, stop.

CPU time and RSS are summed over the process tree (``--workers N`` forks), read with psutil
from /proc (utime + stime). Every process is started in its own session so it can be stopped
by its own id together with its children, never by name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pin_self(cpus: str) -> None:
    """Keep the harness (and the RSS sampler) on the load generator's CPUs."""
    with contextlib.suppress(OSError, ValueError):
        os.sched_setaffinity(0, _parse_cpus(cpus))


def _parse_cpus(cpus: str) -> set[int]:
    out: set[int] = set()
    for part in cpus.split(","):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def taskset_prefix(cpus: str | None) -> list[str]:
    """``taskset -c cpus``, or nothing where that cannot work (no taskset, too few CPUs)."""
    if not cpus or shutil.which("taskset") is None or max(_parse_cpus(cpus)) >= (os.cpu_count() or 1):
        return []
    return ["taskset", "-c", cpus]


class Proc:
    """One started program (a gateway, nginx, the fake upstream)."""

    def __init__(self, name: str, argv: list[str], *, cpus: str | None, log: Path,
                 env: dict[str, str] | None = None) -> None:
        self.name, self.argv, self.cpus, self.log = name, argv, cpus, log
        self.env = {**os.environ, **(env or {})}
        self.popen: subprocess.Popen[bytes] | None = None
        self.started_s = 0.0

    def start(self) -> Proc:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                taskset_prefix(self.cpus) + self.argv, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=self.env, start_new_session=True,
            )
        self.started_s = time.monotonic()
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait_http(self, url: str, timeout: float = 60.0) -> float:
        """Poll ``url`` until it answers 2xx; return the seconds from start to ready."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited during start-up; see {self.log}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if 200 <= resp.status < 300:
                        return time.monotonic() - self.started_s
            except (urllib.error.URLError, OSError) as exc:
                last = str(exc)
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not answer {url} within {timeout:.0f} s ({last}); see {self.log}")

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def tree(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    def cpu_seconds(self) -> float:
        total = 0.0
        for proc in self.tree():
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
        return total

    def rss_bytes(self) -> int:
        total = 0
        for proc in self.tree():
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total

    def stop(self, grace: float = 5.0) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.popen.wait(grace)


class RssSampler:
    """Peak RSS of a process tree while a cell runs (sampled every ``every`` seconds)."""

    def __init__(self, proc: Proc | None, every: float = 0.2) -> None:
        self.proc, self.every = proc, every
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        if self.proc is not None:
            self.peak = self.proc.rss_bytes()
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self.proc is not None:
            self.peak = max(self.peak, self.proc.rss_bytes())

    def _run(self) -> None:
        assert self.proc is not None
        while not self._stop.wait(self.every):
            self.peak = max(self.peak, self.proc.rss_bytes())
