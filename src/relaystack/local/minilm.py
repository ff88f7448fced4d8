"""all-MiniLM-L6-v2 as a plain numpy forward pass (torch-free).

Why numpy and not sentence-transformers: torch makes the default install 1.5 GB and
~3 minutes, this is 0.3 s to load and gives the same vectors (cosine >= 0.99999 against
sentence-transformers, see tests/local/data). The model is a 6-layer BERT (hidden 384,
12 heads of 32, FFN 1536), mean-pooled over real tokens and L2-normalised.

Speed notes (measured on a 2-core box, see bench/local_models.py): every linear layer runs
on the flattened (batch*seq, hidden) activations with pre-transposed weights, Q/K/V are
fused into one matmul, inputs are sorted by length so a batch pads little, and BLAS is
pinned to one thread (a spinning second OpenBLAS thread made single requests 30x slower
when another process was busy).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from relaystack.errors import InvalidRequestError

__all__ = ["MiniLM", "erf"]

F32 = npt.NDArray[np.float32]
HIDDEN = 384
HEADS = 12
HEAD_DIM = HIDDEN // HEADS
MAX_TOKENS = 256  # sentence_bert_config.json max_seq_length
LN_EPS = np.float32(1e-12)

# Abramowitz & Stegun 7.1.26 coefficients: |error| <= 1.5e-7, below float32 resolution
# of the GELU output, and cheaper than scipy (which we do not want as a dependency).
_P = np.float32(0.3275911)
_A = tuple(np.float32(a) for a in (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429))


def erf(x: F32) -> F32:
    """Vectorised erf, exact to ~1e-7 (A&S 7.1.26)."""
    s = np.sign(x)
    a = np.abs(x)
    t = np.float32(1.0) / (np.float32(1.0) + _P * a)
    poly = ((((_A[4] * t + _A[3]) * t + _A[2]) * t + _A[1]) * t + _A[0]) * t
    out: F32 = s * (np.float32(1.0) - poly * np.exp(-a * a))
    return out


def _gelu(x: F32) -> F32:
    """BERT's exact GELU: x * Phi(x)."""
    out: F32 = x * np.float32(0.5) * (np.float32(1.0) + erf(x * np.float32(1.0 / math.sqrt(2.0))))
    return out


def _layer_norm(x: F32, weight: F32, bias: F32) -> F32:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(axis=-1, keepdims=True)
    out = centred / np.sqrt(var + LN_EPS) * weight + bias
    return out.astype(np.float32, copy=False)


@dataclass(slots=True)
class _Layer:
    qkv_w: F32  # (384, 1152): query (pre-scaled by 1/sqrt(32)), key, value
    qkv_b: F32
    out_w: F32
    out_b: F32
    ln1_w: F32
    ln1_b: F32
    ffn_in_w: F32
    ffn_in_b: F32
    ffn_out_w: F32
    ffn_out_b: F32
    ln2_w: F32
    ln2_b: F32


class EmbeddingCancelled(Exception):
    """The caller went away between two batches."""


class MiniLM:
    """Loaded weights + tokenizer. Not thread-safe by design: one worker thread owns it."""

    dimension = HIDDEN
    max_tokens = MAX_TOKENS

    def __init__(self, model_dir: Path, *, batch_size: int = 32) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self.batch_size = batch_size
        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        # tokenizer.json ships truncation 128 and fixed padding to 128; the model card's
        # max_seq_length is 256, and we pad per batch ourselves. No truncation: an input longer
        # than the context is refused (400, as OpenAI does), never silently embedded in part.
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        weights = load_file(str(model_dir / "model.safetensors"))
        self._load(weights)

    def _load(self, w: dict[str, Any]) -> None:
        def get(name: str) -> F32:
            key = name if name in w else f"bert.{name}"
            return np.ascontiguousarray(w[key], dtype=np.float32)

        def lin(name: str) -> F32:
            return np.ascontiguousarray(get(f"{name}.weight").T)

        self._word = get("embeddings.word_embeddings.weight")
        self._pos = get("embeddings.position_embeddings.weight")
        self._type0 = get("embeddings.token_type_embeddings.weight")[0]
        self._emb_ln = (get("embeddings.LayerNorm.weight"), get("embeddings.LayerNorm.bias"))
        scale = np.float32(1.0 / math.sqrt(HEAD_DIM))
        self._layers: list[_Layer] = []
        for i in range(6):
            p = f"encoder.layer.{i}"
            a = f"{p}.attention"
            self._layers.append(
                _Layer(
                    qkv_w=np.ascontiguousarray(
                        np.concatenate(
                            [lin(f"{a}.self.query") * scale, lin(f"{a}.self.key"), lin(f"{a}.self.value")],
                            axis=1,
                        )
                    ),
                    qkv_b=np.concatenate(
                        [
                            get(f"{a}.self.query.bias") * scale,
                            get(f"{a}.self.key.bias"),
                            get(f"{a}.self.value.bias"),
                        ]
                    ),
                    out_w=lin(f"{a}.output.dense"),
                    out_b=get(f"{a}.output.dense.bias"),
                    ln1_w=get(f"{a}.output.LayerNorm.weight"),
                    ln1_b=get(f"{a}.output.LayerNorm.bias"),
                    ffn_in_w=lin(f"{p}.intermediate.dense"),
                    ffn_in_b=get(f"{p}.intermediate.dense.bias"),
                    ffn_out_w=lin(f"{p}.output.dense"),
                    ffn_out_b=get(f"{p}.output.dense.bias"),
                    ln2_w=get(f"{p}.output.LayerNorm.weight"),
                    ln2_b=get(f"{p}.output.LayerNorm.bias"),
                )
            )

    def embed(
        self, texts: Sequence[str], cancelled: Callable[[], bool] | None = None, *, truncate: bool = False
    ) -> tuple[F32, list[int]]:
        """Unit vectors (len(texts), 384) in input order, and each text's token count.

        A text over ``MAX_TOKENS`` is an ``InvalidRequestError``, or with ``truncate`` cut as
        sentence-transformers cuts it ([CLS], the first 254 pieces, [SEP]).
        """
        encodings = self._tokenizer.encode_batch(list(texts))
        ids = [e.ids for e in encodings]
        if truncate:
            ids = [x if len(x) <= MAX_TOKENS else [*x[: MAX_TOKENS - 1], x[-1]] for x in ids]
        counts = [len(x) for x in ids]
        for index, count in enumerate(counts):
            if count > MAX_TOKENS:
                raise InvalidRequestError(
                    f"input[{index}] is {count} tokens; this model's maximum context length is {MAX_TOKENS} "
                    "tokens. Shorten the input or split it into several inputs.",
                    param="input", code="context_length_exceeded",
                )
        out = np.empty((len(texts), HIDDEN), dtype=np.float32)
        # longest first, so each batch pads to a length close to all of its members
        order = sorted(range(len(ids)), key=lambda i: -counts[i])
        for start in range(0, len(order), self.batch_size):
            if cancelled is not None and cancelled():
                raise EmbeddingCancelled
            chunk = order[start : start + self.batch_size]
            out[chunk] = self._forward([ids[i] for i in chunk])
        return out, counts

    def _forward(self, batch: list[list[int]]) -> F32:
        bsz = len(batch)
        seq = max(len(x) for x in batch)
        ids = np.zeros((bsz, seq), dtype=np.int64)
        mask = np.zeros((bsz, seq), dtype=np.float32)
        for row, toks in enumerate(batch):
            ids[row, : len(toks)] = toks
            mask[row, : len(toks)] = 1.0
        h = self._word[ids] + self._pos[:seq] + self._type0
        h = _layer_norm(h.reshape(bsz * seq, HIDDEN), *self._emb_ln)
        bias = ((mask - np.float32(1.0)) * np.float32(1e9))[:, None, None, :]  # (B,1,1,S)
        for layer in self._layers:
            h = self._block(h, layer, bias, bsz, seq)
        hidden = h.reshape(bsz, seq, HIDDEN)
        summed = np.einsum("bsh,bs->bh", hidden, mask)
        pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), np.float32(1e-9))
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        result: F32 = (pooled / np.maximum(norms, np.float32(1e-12))).astype(np.float32, copy=False)
        return result

    @staticmethod
    def _block(h: F32, layer: _Layer, bias: F32, bsz: int, seq: int) -> F32:
        qkv = h @ layer.qkv_w + layer.qkv_b  # (B*S, 1152)
        qkv = qkv.reshape(bsz, seq, 3, HEADS, HEAD_DIM)
        q = qkv[:, :, 0].transpose(0, 2, 1, 3)  # (B,H,S,D)
        k = qkv[:, :, 1].transpose(0, 2, 3, 1)  # (B,H,D,S)
        v = qkv[:, :, 2].transpose(0, 2, 1, 3)
        scores = q @ k + bias  # (B,H,S,S)
        scores -= scores.max(axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=-1, keepdims=True)
        ctx = (scores @ v).transpose(0, 2, 1, 3).reshape(bsz * seq, HIDDEN)
        h = _layer_norm(ctx @ layer.out_w + layer.out_b + h, layer.ln1_w, layer.ln1_b)
        inner = _gelu(h @ layer.ffn_in_w + layer.ffn_in_b)
        return _layer_norm(inner @ layer.ffn_out_w + layer.ffn_out_b + h, layer.ln2_w, layer.ln2_b)


_blas_lock = threading.Lock()
_blas_limiter: object | None = None


def pin_blas_threads(n: int) -> str:
    """Limit BLAS to ``n`` threads for the whole process; returns how it was done (for the log).

    numpy is usually imported long before us, so setting OPENBLAS_NUM_THREADS now would be
    too late; threadpoolctl changes the live library. Without it we can only warn.
    """
    global _blas_limiter
    with _blas_lock:
        try:
            from threadpoolctl import threadpool_limits  # type: ignore[import-untyped,import-not-found,unused-ignore]
        except ImportError:
            return (
                "threadpoolctl is not installed: BLAS threads are pinned only if numpy was not imported "
                "before this model loaded (pip install threadpoolctl)"
            )
        _blas_limiter = threadpool_limits(limits=n, user_api="blas")
        return f"BLAS pinned to {n} thread(s)"
