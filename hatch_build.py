"""Compiles relaystack's optional C accelerator (``src/relaystack/_textscan.c``) when the package is built.

Used by hatchling for a wheel and for ``pip install -e .``. The module is built in place, next to
its source, so an editable install loads it from the tree; a wheel carries it in. It is optional:
without a C compiler or Python's headers the build goes on with a warning and relaystack uses its
pure-Python path (``relaystack version`` says which one it runs). ``RELAYSTACK_NO_COMPILE=1`` skips it.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

_SOURCE = Path("src/relaystack/_textscan.c")


class AcceleratorBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or os.environ.get("RELAYSTACK_NO_COMPILE"):
            return
        source = Path(self.root) / _SOURCE
        target = source.with_name("_textscan" + (sysconfig.get_config_var("EXT_SUFFIX") or ".so"))
        if not _compile(source, target):
            return
        if version != "editable":  # the editable install finds it in the tree
            build_data["force_include"][str(target)] = f"relaystack/{target.name}"
        build_data["pure_python"] = False
        build_data["infer_tag"] = True


def _compile(source: Path, target: Path) -> bool:
    """Builds ``target`` with the compiler Python was built with; False (and a warning) if it cannot."""
    compiler = shlex.split(sysconfig.get_config_var("CC") or "cc")
    include = sysconfig.get_paths()["include"]
    command = [*compiler, "-O2", "-shared", "-fPIC", f"-I{include}", str(source), "-o", str(target)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        _warn(f"{exc}")
        return False
    if done.returncode != 0:
        _warn(done.stderr.strip()[-2000:])
        target.unlink(missing_ok=True)
        return False
    return True


def _warn(why: str) -> None:
    print(f"relaystack: the C accelerator was not built, the pure-Python path will be used ({why})", file=sys.stderr)
