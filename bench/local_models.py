#!/usr/bin/env python3
"""Speed and memory of the embedded default models, measured through their providers.

    python bench/local_models.py            # ~1 min: load, TTFT, decode/prefill tok/s, emb/s, RSS
    python bench/local_models.py --smoke    # a few seconds, same report (numbers are rough)
    python bench/local_models.py --threads-batch 1,2   # compare prompt-processing threads

Everything goes through LlamaCppProvider / SentenceTransformersProvider (worker thread,
queue, SSE shaping included), so the numbers are what a client of `relaystack run` gets
minus HTTP. Each chat run uses a different system message so llama.cpp's prompt cache
cannot skip the prompt. Results: a table on stdout and bench/results/local_models.json
(local_models-smoke.json for --smoke). Speed is reported, never asserted: on a shared
2-core box the numbers move with everything else that runs (the load average is recorded).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from relaystack.providers.base import CallContext, JsonReply, StreamReply  # noqa: E402
from relaystack.providers.local import LlamaCppProvider, SentenceTransformersProvider  # noqa: E402

T0 = time.monotonic()
STORY = "Write a short story about a robot who learns to paint."
PARAGRAPH = (
    "The committee met on a rainy Tuesday to discuss the budget for the new library wing, "
    "the schedule for the renovation of the old reading room, and the plan for moving the archive. "
)


def log(message: str) -> None:
    print(f"[{time.monotonic() - T0:6.1f}s] {message}", flush=True)


def rss_mb() -> float:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def call(provider: LlamaCppProvider | SentenceTransformersProvider) -> CallContext:
    entry = provider.static_models()[0]
    return CallContext(model=entry, requested_model=entry.identifier)


async def load(provider: LlamaCppProvider | SentenceTransformersProvider) -> float:
    """Start loading and wait for it (a first job queues behind the load, like any request)."""
    provider.worker.start()
    try:
        await provider.worker.call(lambda engine, cancelled: None)
    except Exception as exc:
        raise SystemExit(f"{provider.model_id}: {provider.state} ({exc})") from exc
    seconds = provider.worker.load_seconds
    assert seconds is not None
    return seconds


async def one_chat(provider: LlamaCppProvider, messages: list[dict[str, str]], max_tokens: int) -> dict[str, float]:
    body = {"messages": messages, "temperature": 0, "max_tokens": max_tokens, "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    started = time.perf_counter()
    reply = await provider.chat_completion(body, call(provider))
    assert isinstance(reply, StreamReply)
    first = last = 0.0
    usage: dict[str, int] = {}
    async for block in reply.blocks:
        chunk = json.loads(block[6:])
        if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
            last = time.perf_counter()
            first = first or last
        if chunk.get("usage"):
            usage = chunk["usage"]
    n = usage["completion_tokens"]
    return {
        "ttft_s": first - started,
        "decode_tok_s": (n - 1) / (last - first) if n > 1 and last > first else float("nan"),
        "completion_tokens": n,
        "prompt_tokens": usage["prompt_tokens"],
    }


async def bench_chat(args: argparse.Namespace, threads_batch: int) -> dict[str, Any]:
    provider = LlamaCppProvider("bench", {"n_threads": args.threads, "n_threads_batch": threads_batch})
    rss_before = rss_mb()
    load_s = await load(provider)
    rss_loaded = rss_mb()
    log(f"chat model loaded in {load_s:.2f} s (n_threads {args.threads}, n_threads_batch {threads_batch})")
    await one_chat(provider, [{"role": "user", "content": "Hi"}], 2)  # warm-up (first-use allocations)
    runs = []
    for i in range(args.runs):
        messages = [{"role": "system", "content": f"You are a helpful assistant (session {i})."},
                    {"role": "user", "content": STORY}]  # fmt: skip
        run = await one_chat(provider, messages, args.tokens)
        runs.append(run)
        log(f"  chat run {i + 1}/{args.runs}: TTFT {run['ttft_s'] * 1000:.0f} ms, "
            f"{run['decode_tok_s']:.1f} tok/s over {run['completion_tokens']:.0f} tokens")  # fmt: skip
    long_runs = []
    for i in range(max(1, args.runs // 2)):
        text = f"Summary request {i}. " + PARAGRAPH * args.long_paragraphs
        run = await one_chat(provider, [{"role": "user", "content": text}], 2)
        long_runs.append(run)
        log(f"  long prompt {i + 1}: {run['prompt_tokens']:.0f} tokens, TTFT {run['ttft_s'] * 1000:.0f} ms")
    await provider.stop()
    return {
        "n_threads": args.threads,
        "n_threads_batch": threads_batch,
        "load_s": round(load_s, 3),
        "rss_model_mb": round(rss_loaded - rss_before, 1),
        "prompt_tokens": int(runs[0]["prompt_tokens"]),
        "ttft_ms_median": round(statistics.median(r["ttft_s"] for r in runs) * 1000, 1),
        "decode_tok_s_median": round(statistics.median(r["decode_tok_s"] for r in runs), 1),
        "long_prompt_tokens": int(long_runs[0]["prompt_tokens"]),
        "long_ttft_ms_median": round(statistics.median(r["ttft_s"] for r in long_runs) * 1000, 1),
        "prefill_tok_s_median": round(statistics.median(r["prompt_tokens"] / r["ttft_s"] for r in long_runs), 1),
        "runs": runs,
    }


async def bench_embeddings(args: argparse.Namespace) -> dict[str, Any]:
    provider = SentenceTransformersProvider("bench-emb", {"batch_size": 32})
    rss_before = rss_mb()
    load_s = await load(provider)
    rss_loaded = rss_mb()
    log(f"embedding model loaded in {load_s:.2f} s")
    texts = [f"Sentence {i}: the quick brown fox jumps over the lazy dog by the river." for i in range(args.texts)]
    ctx = call(provider)
    await provider.embeddings({"input": texts[:8]}, ctx)  # warm-up
    batch_rates = []
    for _ in range(args.runs):
        started = time.perf_counter()
        reply = await provider.embeddings({"input": texts}, ctx)
        batch_rates.append(len(texts) / (time.perf_counter() - started))
        assert isinstance(reply, JsonReply) and len(reply.data["data"]) == len(texts)
    log(f"  batch of {len(texts)} (32 per forward pass): {statistics.median(batch_rates):.0f} emb/s")
    singles = []
    for text in texts[: args.singles]:
        started = time.perf_counter()
        await provider.embeddings({"input": text}, ctx)
        singles.append(time.perf_counter() - started)
    median_ms = statistics.median(singles) * 1000
    log(f"  single requests: {median_ms:.1f} ms each ({1 / statistics.mean(singles):.0f} emb/s)")
    await provider.stop()
    return {
        "load_s": round(load_s, 3),
        "rss_model_mb": round(rss_loaded - rss_before, 1),
        "batch_texts": len(texts),
        "batch32_emb_s_median": round(statistics.median(batch_rates), 1),
        "single_ms_median": round(statistics.median(singles) * 1000, 2),
        "single_emb_s": round(1 / statistics.mean(singles), 1),
    }


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "")
    except OSError:
        pass
    info: dict[str, Any] = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
                            "loadavg_start": os.getloadavg()}  # fmt: skip
    try:
        import llama_cpp

        info["llama_cpp_python"] = llama_cpp.__version__
        info["llama_cpp_system_info"] = llama_cpp.llama_print_system_info().decode()
    except ImportError:
        pass
    return info


def table(result: dict[str, Any]) -> str:
    rows = [("metric", "value")]
    for chat in result["chat"]:
        tag = f"chat (threads {chat['n_threads']}/{chat['n_threads_batch']})"
        rows += [
            (f"{tag} load", f"{chat['load_s']:.2f} s"),
            (f"{tag} first token ({chat['prompt_tokens']}-token prompt)", f"{chat['ttft_ms_median']:.0f} ms"),
            (f"{tag} decode", f"{chat['decode_tok_s_median']:.1f} tok/s"),
            (f"{tag} prefill ({chat['long_prompt_tokens']} tokens)", f"{chat['prefill_tok_s_median']:.0f} tok/s"),
            (f"{tag} model RSS", f"{chat['rss_model_mb']:.0f} MB"),
        ]
    emb = result["embeddings"]
    rows += [
        ("embeddings load", f"{emb['load_s']:.2f} s"),
        (f"embeddings, batch of {emb['batch_texts']} (32 per pass)", f"{emb['batch32_emb_s_median']:.0f} emb/s"),
        ("embeddings, single request", f"{emb['single_ms_median']:.1f} ms ({emb['single_emb_s']:.0f} emb/s)"),
        ("embeddings model RSS", f"{emb['rss_model_mb']:.0f} MB"),
        ("peak RSS (whole process)", f"{result['peak_rss_mb']:.0f} MB"),
        ("load average start -> end", f"{result['machine']['loadavg_start'][0]:.1f} -> {result['loadavg_end'][0]:.1f}"),
    ]
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"mode": "smoke" if args.smoke else "full", "machine": machine(),
                              "settings": {"tokens": args.tokens, "runs": args.runs, "texts": args.texts}}  # fmt: skip
    log(f"relaystack local models bench ({result['mode']}); load average {os.getloadavg()[0]:.1f}")
    result["chat"] = [await bench_chat(args, tb) for tb in args.threads_batch]
    result["embeddings"] = await bench_embeddings(args)
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    result["loadavg_end"] = os.getloadavg()
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="a few seconds: 1 run, 16 tokens, 64 texts")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--tokens", type=int, default=128, help="max_tokens per chat run")
    p.add_argument("--texts", type=int, default=512, help="texts in the batched embedding request")
    p.add_argument("--singles", type=int, default=32, help="one-text embedding requests")
    p.add_argument("--long-paragraphs", type=int, default=12, help="size of the long prompt (~35 tokens each)")
    p.add_argument("--threads", type=int, default=1, help="n_threads (decode)")
    p.add_argument("--threads-batch", default=None, help="comma list of n_threads_batch (default: the provider's)")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if args.smoke:
        args.runs, args.tokens, args.texts, args.singles, args.long_paragraphs = 2, 16, 64, 8, 4
    if args.threads_batch is None:
        from relaystack.local.llamacpp import LlamaSettings

        args.threads_batch = [LlamaSettings().n_threads_batch]
    else:
        args.threads_batch = [int(x) for x in str(args.threads_batch).split(",")]
    if args.out is None:
        name = "local_models-smoke.json" if args.smoke else "local_models.json"
        args.out = ROOT / "bench" / "results" / name
    return args


if __name__ == "__main__":
    arguments = parse_args()
    outcome = asyncio.run(main(arguments))
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(json.dumps(outcome, indent=2) + "\n")
    print()
    print(table(outcome))
    log(f"wrote {arguments.out}")
