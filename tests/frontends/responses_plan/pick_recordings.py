"""Copy the recordings this plan replays from llama-stack's v0.7.1 Responses recordings (a maintenance
script, not a test)::

    python pick_recordings.py SOURCE                    # SOURCE: .../llamastack-v0.7.1/responses
    pytest tests/frontends/responses_plan --recordings-used-log build/plan-used.txt
    python pick_recordings.py SOURCE build/plan-used.txt  # keep only what a test replayed

It takes the chat-completions recordings of the llama-stack tests in ``IN_SCOPE`` (both client
variants), of the recording generation relaystack translates to (``stream_options`` always set;
``parallel_tool_calls`` with tools; no ``"strict": null``), unchanged and under their own names.
Several tests sent byte-identical first requests and got different answers (other tool call ids,
other words): replay tells them apart by the test id each test sends, so every one is kept.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

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


def pick(source: Path) -> dict[str, dict[str, Any]]:
    """Every in-scope recording of the generation relaystack translates to. Replay matches by the
    test id the plan sends (``__test_id``), so identical requests of different tests each get their
    own answer."""
    picked: dict[str, dict[str, Any]] = {}
    for path in sorted(source.glob("*.json")):
        recording = json.loads(path.read_text())
        request = recording["request"]
        if (request.get("endpoint") != "/v1/chat/completions" or not in_scope(recording.get("test_id") or "")
                or not relaystack_generation(request["body"])):  # fmt: skip
            continue
        picked[path.name] = recording
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
