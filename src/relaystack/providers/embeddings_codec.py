"""OpenAI's base64 embedding encoding: little-endian float32 values, concatenated, base64."""

from __future__ import annotations

import base64
import sys
from array import array
from typing import Any

__all__ = ["encode_base64_embedding", "encode_base64_embeddings"]


def encode_base64_embedding(values: list[float]) -> str:
    packed = array("f", values)
    if sys.byteorder == "big":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


def encode_base64_embeddings(response: dict[str, Any]) -> None:
    """Turn every float-list embedding of an embeddings response into base64, in place."""
    for item in response.get("data") or []:
        if isinstance(item, dict) and isinstance(item.get("embedding"), list):
            item["embedding"] = encode_base64_embedding(item["embedding"])
