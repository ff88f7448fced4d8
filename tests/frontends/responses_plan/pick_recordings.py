"""Copy the recordings this plan replays from llama-stack's v0.7.1 Responses recordings (a maintenance
script, not a test)::

    python pick_recordings.py SOURCE                    # SOURCE: .../llamastack-v0.7.1/responses
    pytest tests/frontends/responses_plan --recordings-used-log build/plan-used.txt
    python pick_recordings.py SOURCE build/plan-used.txt  # keep only what a test replayed

It takes the chat-completions recordings of the llama-stack tests in ``IN_SCOPE`` (both client
variants), of the recording generation relaystack translates to (``stream_options`` always set;
``parallel_tool_calls`` with tools; no ``"strict": null``), unchanged and under their own names.
Several tests sent byte-identical first requests and got different answers (other tool call ids,
other words); a replay that matches by content serves one of them, so for identical requests it
keeps the one whose answer a recorded next turn continues from (the others' tests still replay:
their next turn then matches that conversation), which keeps every recorded conversation whole.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

from relaystack.recording.identity import match_key

HERE = Path(__file__).parent
IN_SCOPE = (
    "test_basic_responses.py::test_response_non_streaming_basic[",
    "test_basic_responses.py::test_response_streaming_basic[",
    "test_basic_responses.py::test_response_streaming_incremental_content[",
    "test_basic_responses.py::test_response_non_streaming_multi_turn[",
    "test_basic_responses.py::test_response_non_streaming_image[",
    "test_basic_responses.py::test_response_non_streaming_multi_turn_image[",
    "test_basic_responses.py::test_include_logprobs_non_streaming[txt=openai",
    "test_basic_responses.py::test_include_logprobs_streaming[txt=openai",
    "test_basic_responses.py::test_include_logprobs_with_function_tools[txt=openai",
    "test_file_search.py::test_response_text_format[",
    "test_structured_output.py::",
    "test_tool_responses.py::test_response_non_streaming_custom_tool[",
    "test_tool_responses.py::test_response_function_call_ordering_",
    "test_tool_responses.py::test_function_call_output_list_text",
    "test_tool_responses.py::test_function_call_output_list_image[",
    "test_tool_responses.py::test_parallel_tool_calls_with_function_tools[",
    "test_tool_responses.py::test_max_tool_calls_with_function_tools[",
    "test_openai_responses.py::TestOpenAIResponses::",
    "test_responses_errors.py::TestResponsesAPIStreamingErrors::test_completed_response_has_no_error[",
)
OUT_OF_SCOPE = ("background_returns_queued", "max_iterations_exceeded", "invalid_base64", "service_tier_flex")


def relaystack_generation(body: dict[str, Any]) -> bool:
    tools = body.get("tools") or []
    if "stream_options" not in body or (tools and "parallel_tool_calls" not in body):
        return False
    return not any("strict" in t.get("function", {}) and t["function"]["strict"] is None for t in tools)


def in_scope(test_id: str) -> bool:
    name = test_id.split("responses/", 1)[-1]
    return name.startswith(IN_SCOPE) and not any(word in name for word in OUT_OF_SCOPE)


def answer_of(recording: dict[str, Any]) -> str:
    """The recorded answer's text and tool call ids, as a continuation would carry them."""
    parts: list[str] = []
    for chunk in recording["response"].get("body") or []:
        for choice in chunk.get("__data__", {}).get("choices") or []:
            delta = choice.get("delta") or {}
            parts.append(delta.get("content") or "")
            parts += [call["id"] for call in delta.get("tool_calls") or [] if call.get("id")]
    return "".join(parts)


def continued(recording: dict[str, Any], others: list[dict[str, Any]]) -> bool:
    sent = recording["request"]["body"]["messages"]
    answer = answer_of(recording)
    for other in others:
        messages = other["request"]["body"]["messages"]
        if len(messages) > len(sent) and messages[: len(sent)] == sent:
            following = messages[len(sent)]
            calls = "".join(c["id"] for c in following.get("tool_calls") or [])
            if following.get("role") == "assistant" and (following.get("content") or "") + calls == answer:
                return True
    return False


def pick(source: Path) -> dict[str, dict[str, Any]]:
    chosen: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for path in sorted(source.glob("*.json")):
        recording = json.loads(path.read_text())
        request = recording["request"]
        if (request.get("endpoint") != "/v1/chat/completions" or not in_scope(recording.get("test_id") or "")
                or not relaystack_generation(request["body"])):  # fmt: skip
            continue
        chosen.setdefault(match_key("POST", request["endpoint"], request["body"]), []).append((path.name, recording))
    everything = [r for group in chosen.values() for _, r in group]
    picked: dict[str, dict[str, Any]] = {}
    for group in chosen.values():
        group.sort(key=lambda item: (not continued(item[1], everything), item[0]))
        name, recording = group[0]
        picked[name] = recording
    return picked


def main(source: Path, used_log: Path | None) -> None:
    target = HERE / "recordings" / "responses"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    picked = pick(source)
    if used_log is not None:  # the next turns of answers a content match never serves
        used = set(used_log.read_text().split())
        picked = {name: r for name, r in picked.items() if name.removesuffix(".json") in used}
    for name in sorted(picked):
        shutil.copyfile(source / name, target / name)
    print(f"{len(picked)} recordings copied to {target}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else None)
