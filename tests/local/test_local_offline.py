"""The embedded models need no network: a real server answers with every connection refused.

offline_probe.py runs in a subprocess whose Python processes (itself and the
`relaystack run` it starts) refuse and log any non-loopback resolve/connect
(netguard/sitecustomize.py). Where the kernel allows it (root or user namespaces), the
whole process tree also runs in an empty network namespace, which blocks C libraries too.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

from localmodels import DATA, LOCAL

pytestmark = LOCAL

HERE = Path(__file__).parent
TESTS = HERE.parent
REFERENCE = json.loads((DATA / "minilm_reference.json").read_text(encoding="utf-8"))["items"][0]


def _namespace_prefix() -> list[str]:
    """`unshare -n` with loopback up, if this machine lets us create a network namespace."""
    if not (shutil.which("unshare") and shutil.which("ip")):
        return []
    probe = subprocess.run(["unshare", "-n", "ip", "link", "set", "lo", "up"], capture_output=True, check=False)
    if probe.returncode != 0:
        return []
    return ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]


def test_server_generates_and_embeds_with_the_network_blocked(tmp_path: Path) -> None:
    net_log = tmp_path / "net.log"
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(
        PYTHONPATH=os.pathsep.join([str(HERE / "netguard"), str(TESTS), env.get("PYTHONPATH", "")]),
        NETGUARD_LOG=str(net_log),
        HF_HUB_OFFLINE="1",
    )
    prefix = _namespace_prefix()
    home = tmp_path / "home"
    home.mkdir()
    proc = subprocess.run(
        [*prefix, sys.executable, str(HERE / "offline_probe.py"), str(home)],
        env=env,
        capture_output=True,
        timeout=300,
        check=False,
    )
    isolation = "network namespace + socket guard" if prefix else "socket guard only"
    assert proc.returncode == 0, f"[{isolation}] {proc.stderr.decode(errors='replace')[-3000:]}"
    out = json.loads(proc.stdout.decode().strip().splitlines()[-1])

    chat = out["chat"]
    assert chat["model"] == "local/smollm2-135m-instruct"
    assert chat["choices"][0]["message"]["content"].strip()
    assert chat["choices"][0]["finish_reason"] in ("stop", "length")
    assert chat["usage"]["prompt_tokens"] == 37
    assert out["stream_text"] == chat["choices"][0]["message"]["content"]
    assert out["stream_usage"] == chat["usage"]
    assert out["stream_finish"] == chat["choices"][0]["finish_reason"]

    vector = out["embedding"]
    assert len(vector) == 384
    dot = sum(a * b for a, b in zip(vector, REFERENCE["embedding"], strict=True))
    assert dot / math.sqrt(sum(b * b for b in REFERENCE["embedding"])) >= 0.9999
    assert out["embedding_usage"]["prompt_tokens"] == 9

    assert {"local/smollm2-135m-instruct", "local/all-MiniLM-L6-v2"} <= set(out["models"])
    states = {m: s for p in out["health"]["providers"].values() for m, s in p.get("models", {}).items()}
    assert states == {"local/smollm2-135m-instruct": "ready", "local/all-MiniLM-L6-v2": "ready"}
    # the progress lines on the relaystack.local logger, none lost while llama.cpp loads
    for model in ("local/smollm2-135m-instruct", "local/all-MiniLM-L6-v2"):
        assert f"loading {model} (" in out["log"] and f"{model} ready in " in out["log"], out["log"]
    assert "BLAS pinned to 1 thread" in out["log"], out["log"]
    attempts = net_log.read_text() if net_log.exists() else ""
    assert attempts == "", f"[{isolation}] network was attempted:\n{attempts}"
