"""Start the fake OpenAI upstream: nginx when installed, the Python fake otherwise.

The Python fake always runs too, because it serves the slow stream of the time-to-first-byte
check (nginx proxies ``/ttfb/`` to it, unbuffered). Both answer ``/nginx_status``, whose
``accepts`` counter gives the upstream connections each gateway opens per request.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from harness.bodies import nginx_id_locations, write_tree
from harness.procs import Proc, free_port

BENCH = Path(__file__).resolve().parent.parent
TEMPLATE = BENCH / "upstream" / "nginx.conf.in"
FAKE = BENCH / "upstream" / "fake_upstream.py"


@dataclass
class Upstream:
    kind: str  # "nginx" or "python"
    base: str
    procs: list[Proc] = field(default_factory=list)

    def accepts(self) -> int | None:
        """Connections accepted so far (None if the counter cannot be read)."""
        try:
            with urllib.request.urlopen(self.base + "/nginx_status", timeout=2) as resp:
                text = resp.read().decode()
        except OSError:
            return None
        match = re.search(r"requests\s*\n\s*(\d+)\s+(\d+)\s+(\d+)", text)
        return int(match.group(1)) if match else None

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


def start_upstream(tmp: Path, cpus: str | None, *, prefer_nginx: bool = True) -> Upstream:
    fake_port = free_port()
    fake = Proc("fake-upstream", [sys.executable, str(FAKE), "--port", str(fake_port)], cpus=cpus,
                log=tmp / "logs" / "fake-upstream.log").start()
    fake.wait_http(f"http://127.0.0.1:{fake_port}/v1/models", timeout=20)
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if not (prefer_nginx and nginx):
        return Upstream("python", f"http://127.0.0.1:{fake_port}", [fake])
    try:
        return Upstream("nginx", *_start_nginx(nginx, tmp, cpus, fake, fake_port))
    except RuntimeError as exc:  # e.g. a build without stub_status or proxy: keep going, say so
        print(f"nginx did not start ({exc}); using the Python fake upstream", file=sys.stderr)
        return Upstream("python", f"http://127.0.0.1:{fake_port}", [fake])
    except BaseException:
        fake.stop()
        raise


def _start_nginx(nginx: str, tmp: Path, cpus: str | None, fake: Proc, fake_port: int) -> tuple[str, list[Proc]]:
    prefix = tmp / "nginx"
    prefix.mkdir(parents=True, exist_ok=True)
    bodies = write_tree(prefix / "bodies", split_ids=True)
    port = free_port()
    conf = TEMPLATE.read_text()
    # as root, nginx's workers would run as nobody, who may not read a private temp dir
    user = "user root;" if os.geteuid() == 0 else ""
    for key, value in {"@PREFIX@": str(prefix), "@BODIES@": str(bodies), "@PORT@": str(port),
                       "@TTFB_PORT@": str(fake_port), "@USER@": user,
                       "@ID_LOCATIONS@": nginx_id_locations()}.items():
        conf = conf.replace(key, value)
    (prefix / "nginx.conf").write_text(conf)
    proc = Proc("nginx", [nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"],
                cpus=cpus, log=tmp / "logs" / "nginx.log").start()
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/v1/models", timeout=20)
    except BaseException:
        proc.stop()
        raise
    return f"http://127.0.0.1:{port}", [fake, proc]
