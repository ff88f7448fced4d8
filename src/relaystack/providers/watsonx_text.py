"""watsonx.ai's text generation API as OpenAI's ``/completions`` (both ways, streams included).

``POST /ml/v1/text/generation`` takes ``{"input", "model_id", "project_id", "parameters":
{"max_new_tokens", "temperature", "top_p", "random_seed", "stop_sequences", "decoding_method"}}``
and answers ``{"model_id", "results": [{"generated_text", "generated_token_count",
"input_token_count", "stop_reason"}]}``; ``/text/generation_stream`` sends one such object per
event. Each becomes an OpenAI ``text_completion`` (chunk), its ``stop_reason`` a ``finish_reason``.
"""

from __future__ import annotations

import time
from typing import Any

from relaystack.errors import InvalidRequestError, UpstreamError, UpstreamProtocolError

__all__ = ["completion_chunks", "completion_from", "generation_body"]

# watsonx stop_reason -> OpenAI finish_reason (None: the stream goes on)
_FINISH = {
    "not_finished": None, "eos_token": "stop", "stop_sequence": "stop", "max_tokens": "length",
    "token_limit": "length", "time_limit": "length", "cancelled": "stop",
}
_PARAMETERS = {"max_tokens": "max_new_tokens", "temperature": "temperature", "top_p": "top_p",
               "seed": "random_seed"}


def generation_body(body: dict[str, Any], model_id: str, project_id: str) -> dict[str, Any]:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise InvalidRequestError("watsonx completes one text prompt per request: 'prompt' must be a string.",
                                  param="prompt")
    parameters: dict[str, Any] = {
        target: body[source] for source, target in _PARAMETERS.items() if body.get(source) is not None
    }
    stop = body.get("stop")
    if stop is not None:
        parameters["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    temperature = body.get("temperature")
    parameters["decoding_method"] = "greedy" if temperature == 0 else "sample"
    return {"input": prompt, "model_id": model_id, "project_id": project_id, "parameters": parameters}


def _result(data: dict[str, Any]) -> dict[str, Any]:
    results = data.get("results")
    if not isinstance(results, list) or not results or not isinstance(results[0], dict):
        raise UpstreamProtocolError("watsonx answered a generation without 'results'.")
    result: dict[str, Any] = results[0]
    if result.get("stop_reason") == "error":
        raise UpstreamError("watsonx stopped the generation with an error.", status=502)
    return result


def completion_from(data: dict[str, Any], model: str) -> dict[str, Any]:
    result = _result(data)
    prompt_tokens = int(result.get("input_token_count") or 0)
    completion_tokens = int(result.get("generated_token_count") or 0)
    return {
        "id": f"cmpl-{data.get('created_at') or int(time.time())}",
        "object": "text_completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "text": str(result.get("generated_text") or ""), "logprobs": None,
                     "finish_reason": _FINISH.get(str(result.get("stop_reason")), "stop")}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def completion_chunks(event: dict[str, Any], model: str, created: int) -> list[dict[str, Any]]:
    """One streamed generation event as an OpenAI completion chunk."""
    result = _result(event)
    return [{
        "id": f"cmpl-{created}", "object": "text_completion", "created": created, "model": model,
        "choices": [{"index": 0, "text": str(result.get("generated_text") or ""), "logprobs": None,
                     "finish_reason": _FINISH.get(str(result.get("stop_reason")), "stop")}],
    }]
