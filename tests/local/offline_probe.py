"""Run by test_local_offline.py in a subprocess with the network blocked (not a test module).

Starts a real `relaystack run` serving only the two embedded providers (preloaded), asks
it for a chat completion, a streamed one and embeddings with the official openai SDK over
127.0.0.1, and prints the results as one JSON line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import openai

from support.server import start_server, write_config

CONFIG = {
    "version": 2,
    "providers": {
        "inference": [
            {"provider_id": "local", "provider_type": "inline::llama-cpp", "config": {"preload": True}},
            {
                "provider_id": "local-embeddings",
                "provider_type": "inline::sentence-transformers",
                "config": {"preload": True},
            },
        ]
    },
    "models": [],
}
QUESTION = [{"role": "user", "content": "What is 2+2?"}]


def main(home: Path) -> None:
    config = write_config(home / "run.yaml", CONFIG)
    server = start_server(config, home=home, wait_ready=True, timeout_s=180)
    try:
        client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0)
        chat = client.chat.completions.create(
            model="local/smollm2-135m-instruct",
            messages=QUESTION,
            temperature=0,
            max_tokens=12,  # type: ignore[arg-type]
        )
        chunks = list(
            client.chat.completions.create(
                model="local/smollm2-135m-instruct",
                messages=QUESTION,  # type: ignore[arg-type]
                temperature=0,
                max_tokens=12,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        emb = client.embeddings.create(model="local/all-MiniLM-L6-v2", input=["How do I reset my password?"])
        health = httpx.get(server.base_url + "/v1/health", timeout=10).json()
        models = httpx.get(server.base_url + "/v1/models", timeout=10).json()
    finally:
        server.stop()
    out = {
        "chat": chat.model_dump(),
        "stream_text": "".join(c.choices[0].delta.content or "" for c in chunks if c.choices),
        "stream_usage": chunks[-1].usage.model_dump() if chunks[-1].usage else None,
        "stream_finish": [c.choices[0].finish_reason for c in chunks if c.choices][-1],
        "embedding": emb.data[0].embedding,
        "embedding_usage": emb.usage.model_dump(),
        "health": health,
        "models": [m["id"] for m in models["data"]],
        "log": server.log(),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
