"""Several processes on one SQLite file (``relaystack run --workers N``), and SIGKILL durability."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

import orjson
from store_helpers import completion, messages, page_through

import relaystack
from relaystack.storage.sqlite import SqliteStore

CHILD = Path(__file__).with_name("store_child.py")


def child_env() -> dict[str, str]:
    src = str(Path(relaystack.__file__).resolve().parents[1])  # works installed or from a checkout
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}


async def spawn(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, str(CHILD), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=child_env(),
    )


async def run_child(*args: str) -> str:
    proc = await spawn(*args)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_models_and_their_version_are_shared_between_processes(
    sqlite_store: SqliteStore, db_path: Path
) -> None:
    v0 = sqlite_store.models_version()
    child_version = int(await run_child("models-put", str(db_path), "child/m"))
    assert sqlite_store.models_version() == child_version != v0
    assert [m["identifier"] for m in await sqlite_store.load_models()] == ["child/m"]

    await sqlite_store.put_model({"identifier": "parent/m", "provider_id": "parent"})
    shown = orjson.loads(await run_child("models-show", str(db_path)))
    assert shown["version"] == sqlite_store.models_version() != child_version
    assert [m["identifier"] for m in shown["models"]] == ["child/m", "parent/m"]

    assert await sqlite_store.delete_model("child/m") is True
    shown = orjson.loads(await run_child("models-show", str(db_path)))
    assert shown["version"] == sqlite_store.models_version()
    assert [m["identifier"] for m in shown["models"]] == ["parent/m"]


async def test_completions_written_by_another_process_leave_the_models_version_alone(
    sqlite_store: SqliteStore, db_path: Path
) -> None:
    before = sqlite_store.models_version()
    assert await run_child("put-many", str(db_path), "other", "20") == "done 20\n"
    assert len((await sqlite_store.list_completions(limit=100))["data"]) == 20
    assert sqlite_store.models_version() == before


async def test_three_processes_start_and_write_one_fresh_file_at_once(db_path: Path) -> None:
    children = [await spawn("put-many", str(db_path), f"child{n}", "300") for n in range(2)]
    store = SqliteStore(db_path)  # races the children's schema creation
    await store.start()
    try:
        await asyncio.gather(
            *(store.put_completion(completion(f"parent-{i}"), messages()) for i in range(300))
        )
        for child in children:
            out, err = await asyncio.wait_for(child.communicate(), 60)
            assert child.returncode == 0, err.decode()
            assert out == b"done 300\n"
        listed = await page_through(store, limit=100, order="desc")
    finally:
        await store.stop()
    expected = {f"{who}-{i}" for who in ("parent", "child0", "child1") for i in range(300)}
    assert len(listed) == len(set(listed)) == 900
    assert set(listed) == expected


async def test_every_acknowledged_put_survives_sigkill(db_path: Path) -> None:
    proc = await spawn("put-until-killed", str(db_path), "400")
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == -signal.SIGKILL, err.decode()
    acked = out.decode().split()
    assert len(acked) >= 400

    with sqlite3.connect(db_path) as conn:  # the first open after the crash recovers the WAL
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        stored = {cid for (cid,) in conn.execute("SELECT id FROM chat_completions")}
    missing = set(acked) - stored
    assert not missing, f"{len(missing)} acknowledged completions lost, e.g. {sorted(missing)[:5]}"

    store = SqliteStore(db_path)  # and the store works on the recovered file
    await store.start()
    try:
        got = await store.get_completion(acked[-1])
        assert got["input_messages"] == [{"role": "user", "content": acked[-1]}]
        await store.put_completion(completion("after-crash", created=int(time.time()) + 60), messages())
        assert (await store.list_completions(limit=1))["data"][0]["id"] == "after-crash"
    finally:
        await store.stop()
