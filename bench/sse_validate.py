"""Micro-benchmark: what checking every streamed event costs, by method.

The relay must never pass an invalid or wrongly shaped event to a client, so every event of
a stream is checked before its block is forwarded. This measures the candidate checks on the
bench's 500-event stream (the sse500 body, ~100 KB), as CPU time per stream (best of N runs):

    .venv/bin/python bench/sse_validate.py [--events 500] [--runs 9]

Rows: what the relay did before it checked anything (the byte edits alone), the candidate
checks alone (the careful one, ``decode_plain_block``, and the one the relay uses now,
``StreamCheck``: text events proven against a template of the first, by the C accelerator
``relaystack._textscan`` and by the pure-Python fallback), and the relay's whole
per-block work now (``SSERelay._process``: check, usage,
finish, model id, secret scan) with and without a caller model id that differs from the
upstream's. Results and the choice are in bench/README.md ("Checking every streamed event").
"""

from __future__ import annotations

import argparse
import operator
import sys
import time
import timeit
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness.bodies import sse_body
from relaystack import text_template
from relaystack.chunk_shape import CHUNK_DECODER, Chunk, StreamCheck, decode_plain_block
from relaystack.providers.sse_relay import RelayRules, SSERelay
from relaystack.redaction import Redactor

MODEL = "bench-sse500"
CANARY = "sk-bench-0123456789abcdefghijklmnopqrstuv"


def _python_shape_check(chunks: list[Any]) -> None:
    for chunk in chunks:
        if type(chunk) is not dict:
            raise ValueError("not an object")
        choices = chunk.get("choices")
        if type(choices) is not list:
            raise ValueError("choices")
        for choice in choices:
            if type(choice) is not dict or type(choice.get("index", 0)) is not int:
                raise ValueError("choice")
            delta = choice.get("delta")
            if delta is not None:
                if type(delta) is not dict:
                    raise ValueError("delta")
                content = delta.get("content")
                if content is not None and type(content) is not str:
                    raise ValueError("content")


@contextmanager
def pure_python() -> Iterator[None]:
    """Readers made inside use the pure-Python template proof (they pick theirs when made)."""
    accel, text_template.ACCEL = text_template.ACCEL, None
    try:
        yield
    finally:
        text_template.ACCEL = accel


def checker(python: bool) -> Callable[[], StreamCheck]:
    def make() -> StreamCheck:
        if not python:
            return StreamCheck()
        with pure_python():
            return StreamCheck()

    return make


def cases(block: bytes) -> dict[str, Callable[[], object]]:
    payloads = block[6:-2].split(b"\n\ndata: ")
    upstream_field = b'"model":"' + MODEL.encode() + b'"'

    def old_byte_relay() -> object:  # what the relay did per block before it checked events
        fields = block.count(b'"model"')
        same = block.count(upstream_field) == fields
        return same and b'"finish_reason":"' in block[-8192:] and b'{"error"' in block[-8192:]

    def split() -> object:
        return block[6:-2].split(b"\n\ndata: ")

    def orjson_each() -> object:
        return list(map(orjson.loads, payloads))

    def orjson_array() -> object:  # not a per-event check: one event may complete another
        return orjson.loads(b"[" + b",".join(payloads) + b"]")

    def orjson_array_shape() -> object:
        chunks = orjson.loads(b"[" + b",".join(payloads) + b"]")
        _python_shape_check(chunks)
        return chunks

    def msgspec_each() -> object:
        return list(map(CHUNK_DECODER.decode, payloads))

    block_decoder = msgspec.json.Decoder(list[Chunk])

    def msgspec_array() -> object:  # not a per-event check either
        return block_decoder.decode(b"[" + block[6:-2].replace(b"\n\ndata: ", b",") + b"]")

    def msgspec_block() -> object:
        return decode_plain_block(block)

    def template_first(python: bool) -> Callable[[], object]:  # a stream's first block: learns, proves the rest
        make = checker(python)
        return lambda: make().plain_block(block)

    def template_known(python: bool) -> Callable[[], object]:  # a later block: the template is known
        known = checker(python)()
        known.plain_block(block)
        return lambda: known.plain_block(block)

    def relay(caller: str, secret: str | None, python: bool = False) -> Callable[[], object]:
        redactor = Redactor([secret] if secret else [])

        def run() -> object:
            rules = RelayRules(caller, redactor=redactor)
            if python:
                with pure_python():
                    return SSERelay(None, rules)._process(block)  # type: ignore[arg-type]
            return SSERelay(None, rules)._process(block)  # type: ignore[arg-type]

        return run

    usage = operator.attrgetter("usage")
    chunks = list(map(CHUNK_DECODER.decode, payloads))

    def usage_scan() -> object:
        return list(map(usage, chunks)).count(None)

    return {
        "before: byte edits only (old relay)": old_byte_relay,
        "split into events": split,
        "orjson, each event": orjson_each,
        "orjson, one array (not per-event)": orjson_array,
        "orjson, one array + Python shape check": orjson_array_shape,
        "msgspec Chunk, each event (decode only)": msgspec_each,
        "msgspec Chunk, one array (not per-event)": msgspec_array,
        "before: split + line check + msgspec each": msgspec_block,
        "template check, Python, first block (learns)": template_first(True),
        "template check, Python, template known": template_known(True),
        "now: template check, C, first block (learns)": template_first(False),
        "now: template check, C, template known": template_known(False),
        "usage scan of decoded chunks": usage_scan,
        "relay, Python proof: same model id, no key": relay(MODEL, None, python=True),
        "relay now: same model id, no key": relay(MODEL, None),
        "relay now: same model id, 1 key scanned": relay(MODEL, CANARY),
        "relay now: caller id differs, 1 key": relay("provider/" + MODEL, CANARY),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    body = sse_body(MODEL, args.events)
    block = body[: -len(b"data: [DONE]\n\n")]
    print(f"{args.events} events, {len(block):,} bytes, one block; CPU time per stream, best of {args.runs}; "
          f"template proof: {text_template.accelerator()}")
    for name, fn in cases(block).items():
        number = 50
        best = min(timeit.repeat(fn, number=number, repeat=args.runs, timer=time.process_time)) / number
        print(f"  {name:45s} {best * 1e6:8.1f} µs  ({best * 1e9 / args.events:5.0f} ns/event)")


if __name__ == "__main__":
    main()
