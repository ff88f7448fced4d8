"""The Store contract, run against SqliteStore and MemoryStore alike (the ``store`` fixture)."""

from __future__ import annotations

import random

import pytest
from store_helpers import completion, messages, page_through

from relaystack.errors import CompletionNotFoundError, InvalidRequestError
from relaystack.storage._common import MAX_LIMIT
from relaystack.storage.base import Store

T0 = 1_700_000_000


async def fill_same_seconds(store: Store) -> list[tuple[str, int, str]]:
    """61 rows over 3 seconds, most in one second, inserted out of `created` order, two models.

    Returns (id, created, model) in insertion order.
    """
    rng = random.Random(7)
    rows: list[tuple[str, int, str]] = []
    for index in range(61):
        created = T0 + (1 if index < 45 else rng.choice([0, 2]))  # 45 rows share T0+1
        rows.append((f"chatcmpl-{index:03d}", created, "a" if rng.random() < 0.6 else "b"))
    rng.shuffle(rows)
    for cid, created, model in rows:  # sequential: insertion order is the list order
        await store.put_completion(completion(cid, created, model), messages(cid))
    return rows


def expected_order(rows: list[tuple[str, int, str]], order: str, model: str | None) -> list[str]:
    kept = [(created, seq, cid) for seq, (cid, created, m) in enumerate(rows) if model in (None, m)]
    kept.sort(reverse=order == "desc")
    return [cid for _, _, cid in kept]


@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("model", [None, "a", "b"])
@pytest.mark.parametrize("limit", [1, 7, 100])
async def test_paging_never_skips_nor_repeats_rows_of_the_same_second(
    store: Store, order: str, model: str | None, limit: int
) -> None:
    rows = await fill_same_seconds(store)
    seen = await page_through(store, limit=limit, order=order, model=model)
    assert seen == expected_order(rows, order, model)
    assert len(seen) == len(set(seen))


async def test_items_carry_the_completion_and_its_input_messages(store: Store) -> None:
    await store.put_completion(completion("c1", text="answer"), messages("question"))
    page = await store.list_completions()
    assert page["data"] == [{**completion("c1", text="answer"), "input_messages": messages("question")}]
    got = await store.get_completion("c1")
    assert got == {**completion("c1", text="answer"), "input_messages": messages("question")}


async def test_default_is_desc_with_limit_20(store: Store) -> None:
    for index in range(25):
        await store.put_completion(completion(f"c{index:02d}", T0 + index), messages())
    page = await store.list_completions()
    assert [item["id"] for item in page["data"]] == [f"c{index:02d}" for index in range(24, 4, -1)]
    assert page["has_more"] is True


async def test_empty_store_gives_an_empty_page(store: Store) -> None:
    page = await store.list_completions()
    assert dict(page) == {"object": "list", "data": [], "has_more": False, "first_id": "", "last_id": ""}


async def test_after_the_last_row_gives_an_empty_page(store: Store) -> None:
    await store.put_completion(completion("only"), messages())
    page = await store.list_completions(after="only")
    assert (page["data"], page["has_more"], page["first_id"], page["last_id"]) == ([], False, "", "")


async def test_after_a_row_of_another_model_continues_from_its_position(store: Store) -> None:
    for cid, model in [("x1", "a"), ("x2", "b"), ("x3", "a"), ("x4", "b")]:
        await store.put_completion(completion(cid, model=model), messages())
    page = await store.list_completions(after="x2", model="a", order="asc")
    assert [item["id"] for item in page["data"]] == ["x3"]


async def test_model_filter_is_an_exact_match(store: Store) -> None:
    await store.put_completion(completion("c1", model="together/llama"), messages())
    await store.put_completion(completion("c2", model="llama"), messages())
    page = await store.list_completions(model="llama")
    assert [item["id"] for item in page["data"]] == ["c2"]


async def test_a_repeated_id_replaces_the_row_and_keeps_its_position(store: Store) -> None:
    for cid in ["r1", "r2", "r3"]:
        await store.put_completion(completion(cid, text="first"), messages("first"))
    await store.put_completion(completion("r2", text="second"), messages("second"))
    page = await store.list_completions(order="asc")
    assert [item["id"] for item in page["data"]] == ["r1", "r2", "r3"]
    assert page["data"][1]["choices"][0]["message"]["content"] == "second"
    got = await store.get_completion("r2")
    assert got["input_messages"] == messages("second")


async def test_a_replacement_takes_the_new_created_and_model(store: Store) -> None:
    await store.put_completion(completion("r1", T0, "a"), messages())
    await store.put_completion(completion("r2", T0 + 5, "a"), messages())
    await store.put_completion(completion("r1", T0 + 9, "b"), messages())
    page = await store.list_completions(order="asc")
    assert [item["id"] for item in page["data"]] == ["r2", "r1"]
    assert [item["id"] for item in (await store.list_completions(model="a"))["data"]] == ["r2"]


async def test_the_stored_row_is_a_snapshot_of_the_callers_dict(store: Store) -> None:
    row = completion("snap", text="before")
    input_messages = messages("before")
    await store.put_completion(row, input_messages)
    row["choices"][0]["message"]["content"] = "after"
    input_messages.append({"role": "user", "content": "later"})
    got = await store.get_completion("snap")
    assert got["choices"][0]["message"]["content"] == "before"
    assert got["input_messages"] == messages("before")


@pytest.mark.parametrize("limit", [0, -1, MAX_LIMIT + 1, True, 2.5, "5"])
async def test_limit_outside_1_to_max_is_rejected(store: Store, limit: object) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        await store.list_completions(limit=limit)  # type: ignore[arg-type]
    assert caught.value.param == "limit"
    assert f"1 to {MAX_LIMIT}" in caught.value.message
    assert caught.value.status_code == 400


@pytest.mark.parametrize("limit", [1, 2, MAX_LIMIT])
async def test_limit_bounds_are_accepted(store: Store, limit: int) -> None:
    for index in range(3):
        await store.put_completion(completion(f"c{index}"), messages())
    page = await store.list_completions(limit=limit)
    assert len(page["data"]) == min(limit, 3)
    assert page["has_more"] is (limit < 3)


@pytest.mark.parametrize("order", ["ascending", "DESC", ""])
async def test_unknown_order_names_the_valid_values(store: Store, order: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        await store.list_completions(order=order)  # type: ignore[arg-type]
    assert caught.value.param == "order"
    assert "'asc'" in caught.value.message and "'desc'" in caught.value.message


async def test_unknown_after_is_an_invalid_request_naming_the_id(store: Store) -> None:
    await store.put_completion(completion("known"), messages())
    with pytest.raises(InvalidRequestError) as caught:
        await store.list_completions(after="chatcmpl-nope")
    assert "no stored chat completion with id 'chatcmpl-nope'" in caught.value.message
    assert caught.value.param == "after"


async def test_get_of_a_missing_id_is_not_found_naming_the_id(store: Store) -> None:
    with pytest.raises(CompletionNotFoundError) as caught:
        await store.get_completion("chatcmpl-missing")
    assert "chatcmpl-missing" in caught.value.message
    assert caught.value.status_code == 404


@pytest.mark.parametrize(
    "bad",
    [
        {"created": T0, "model": "m"},
        {"id": "", "created": T0, "model": "m"},
        {"id": "x", "created": "yesterday", "model": "m"},
        {"id": "x", "created": T0, "model": None},
    ],
)
async def test_a_completion_without_id_created_or_model_is_refused(store: Store, bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        await store.put_completion(bad, [])
    assert (await store.list_completions())["data"] == []


async def test_models_round_trip_and_version(store: Store) -> None:
    v0 = store.models_version()
    await store.put_model({"identifier": "p/m1", "provider_id": "p", "metadata": {"k": 1}})
    v1 = store.models_version()
    await store.put_model({"identifier": "p/m2", "provider_id": "p"})
    await store.put_model({"identifier": "p/m1", "provider_id": "p", "metadata": {"k": 2}})  # replace
    v2 = store.models_version()
    assert len({v0, v1, v2}) == 3
    assert await store.load_models() == [
        {"identifier": "p/m1", "provider_id": "p", "metadata": {"k": 2}},
        {"identifier": "p/m2", "provider_id": "p"},
    ]
    assert await store.delete_model("p/m1") is True
    v3 = store.models_version()
    assert await store.delete_model("p/m1") is False
    assert store.models_version() == v3 != v2
    assert await store.load_models() == [{"identifier": "p/m2", "provider_id": "p"}]


async def test_completion_writes_do_not_change_the_models_version(store: Store) -> None:
    before = store.models_version()
    await store.put_completion(completion("c1"), messages())
    assert store.models_version() == before


async def test_a_model_without_identifier_is_refused(store: Store) -> None:
    with pytest.raises(ValueError):
        await store.put_model({"provider_id": "p"})
