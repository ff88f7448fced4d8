"""A second process using the same SQLite file or PostgreSQL database (run by tests, not collected).

    store_child.py models-put DB IDENTIFIER      register a model, print the models version
    store_child.py models-show DB                print {"version": ..., "models": [...]}
    store_child.py put-many DB PREFIX N          N concurrent completion puts, print "done N"
    store_child.py put-until-killed DB N         32 writers; print each acknowledged id; SIGKILL self after N
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sys
import time
from pathlib import Path

import orjson

from relaystack.storage.base import Store
from relaystack.storage.postgres import PgSettings, PostgresStore
from relaystack.storage.sqlite import SqliteStore


def row(cid: str) -> dict[str, object]:
    return {"id": cid, "object": "chat.completion", "created": int(time.time()), "model": "child", "choices": []}


async def models_put(store: Store, identifier: str) -> None:
    await store.put_model({"identifier": identifier, "provider_id": "child"})
    print(store.models_version(), flush=True)


async def models_show(store: Store) -> None:
    print(orjson.dumps({"version": store.models_version(), "models": await store.load_models()}).decode())


async def put_many(store: Store, prefix: str, count: int) -> None:
    await asyncio.gather(*(store.put_completion(row(f"{prefix}-{i}"), []) for i in range(count)))
    print(f"done {count}", flush=True)


async def put_until_killed(store: Store, acks_before_kill: int) -> None:
    counter = itertools.count()
    acked = 0
    out = sys.stdout

    async def writer() -> None:
        nonlocal acked
        while True:
            cid = f"kill-{next(counter)}"
            await store.put_completion(row(cid), [{"role": "user", "content": cid}])
            out.write(cid + "\n")  # written only after the put returned, i.e. after the commit
            out.flush()
            acked += 1
            if acked >= acks_before_kill:
                os.kill(os.getpid(), signal.SIGKILL)  # other writes are queued or mid-commit right now

    await asyncio.gather(*(writer() for _ in range(32)))


async def main(argv: list[str]) -> None:
    command, db = argv[0], argv[1]
    # DB is a SQLite path or a PostgreSQL DSN
    store: Store = PostgresStore(PgSettings(db)) if db.startswith("postgresql:") else SqliteStore(Path(db))
    await store.start()
    try:
        if command == "models-put":
            await models_put(store, argv[2])
        elif command == "models-show":
            await models_show(store)
        elif command == "put-many":
            await put_many(store, argv[2], int(argv[3]))
        elif command == "put-until-killed":
            await put_until_killed(store, int(argv[2]))
        else:
            raise SystemExit(f"unknown command {command}")
    finally:
        await store.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
