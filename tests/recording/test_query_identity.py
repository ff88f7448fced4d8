"""The query string is part of an API call's identity: the pages of a listing (Anthropic's
``GET /v1/models?limit=1000&after_id=...``) are recorded side by side and each replays as itself,
while a recording made without a query (every llama-stack file) still answers, and no credential
carried in a query reaches a file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from relaystack.errors import ReplayMissError
from relaystack.providers.base import Provider
from relaystack.providers.catalog import build_provider
from relaystack.recording import RecordingUpstream, ReplayingUpstream
from relaystack.recording.identity import identity_of_record, identity_of_request
from relaystack.recording.layout import RecordingFormat, recording_files
from relaystack.recording.store import RecordingStore
from relaystack.upstream.base import UpstreamRequest
from relaystack.upstream.mock import MockResponse, MockUpstream

from .conftest import get

ANTHROPIC = "https://api.anthropic.com/v1"
PAGES = {None: {"data": [{"id": "claude-a", "type": "model"}], "has_more": True, "last_id": "claude-a"},
         "claude-a": {"data": [{"id": "claude-b", "type": "model"}], "has_more": False, "last_id": "claude-b"}}


def _pages(request: UpstreamRequest) -> MockResponse:
    after = request.url.split("after_id=")[1] if "after_id=" in request.url else None
    return MockResponse.json(PAGES[after])


def _anthropic(upstream: Any) -> Provider:
    return build_provider("anthropic", "remote::anthropic", {"api_key": "sk-ant-" + "k" * 24}, upstream)


async def _listed(provider: Provider) -> list[str]:
    return [entry.provider_resource_id for entry in await provider.list_models() or []]


@pytest.mark.parametrize("fmt", [RecordingFormat.SEED, RecordingFormat.PER_TEST])
async def test_each_page_of_a_listing_is_recorded_and_replayed_as_itself(tmp_path: Path, fmt: RecordingFormat) -> None:
    recorder = RecordingUpstream(MockUpstream(_pages), RecordingStore(tmp_path, fmt))
    assert await _listed(_anthropic(recorder)) == ["claude-a", "claude-b"]
    written = sorted(recording_files(tmp_path))
    assert len(written) == 2  # one file per page, not the second over the first
    urls = sorted(json.loads(path.read_text())["request"]["url"] for path in written)
    assert urls == [f"{ANTHROPIC}/v1/models?after_id=claude-a&limit=1000", f"{ANTHROPIC}/v1/models?limit=1000"]
    replayer = ReplayingUpstream(None, RecordingStore(tmp_path, fmt))
    assert await _listed(_anthropic(replayer)) == ["claude-a", "claude-b"]


async def test_a_recording_without_a_query_answers_a_request_with_one(tmp_path: Path) -> None:
    """llama-stack's files (and relaystack's before) were written without the query string."""
    recorder = RecordingUpstream(MockUpstream(lambda _: MockResponse.json(PAGES["claude-a"])), RecordingStore(tmp_path))
    await (await recorder.send(get(ANTHROPIC, "/models"))).read()
    replayer = ReplayingUpstream(None, RecordingStore(tmp_path))
    assert await _listed(_anthropic(replayer)) == ["claude-b"]


async def test_a_query_that_was_not_recorded_misses_naming_the_query(tmp_path: Path) -> None:
    recorder = RecordingUpstream(MockUpstream(_pages), RecordingStore(tmp_path))
    await (await recorder.send(get(ANTHROPIC, "/models?limit=1000"))).read()
    replayer = ReplayingUpstream(None, RecordingStore(tmp_path))
    with pytest.raises(ReplayMissError, match=r"/models\?after_id=claude-z"):
        await replayer.send(get(ANTHROPIC, "/models?limit=1000&after_id=claude-z"))


def test_the_order_of_the_parameters_does_not_matter_but_their_values_do() -> None:
    one = identity_of_request(get(ANTHROPIC, "/models?limit=10&after_id=x"))
    assert one.match_key() == identity_of_request(get(ANTHROPIC, "/models?after_id=x&limit=10")).match_key()
    assert one.hash != identity_of_request(get(ANTHROPIC, "/models?after_id=y&limit=10")).hash
    plain = identity_of_request(get(ANTHROPIC, "/models"))
    assert plain.query == "" and plain.hash == one.without_query().hash
    by_hand = identity_of_record({"method": "POST", "url": f"{ANTHROPIC}/v1/models?limit=10&after_id=x", "body": {}})
    assert by_hand.match_key() == one.match_key() and by_hand.hash == one.hash
    assert by_hand.per_test_hash == one.per_test_hash


def test_no_credential_in_a_query_is_part_of_the_identity() -> None:
    key = "query-credential-0123456789"
    request = get(ANTHROPIC, f"/models?limit=5&key={key}&X-Amz-Signature=abc&sig=s&api_key=a&mine={key}x",
                  {"Authorization": f"Bearer {key}x"})
    assert identity_of_request(request).query == "limit=5"


def test_a_download_keeps_no_query(tmp_path: Path) -> None:
    """A signed link's query carries a token and an expiry time: not part of what it is."""
    request = get("https://bucket.example.com", "/cat.png?X-Amz-Date=20260101&expires=1767225600&v=2")
    assert identity_of_request(request).url == "https://bucket.example.com/cat.png"
