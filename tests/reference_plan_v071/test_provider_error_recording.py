"""llama-stack v0.7.1's ``tests/integration/inference/test_provider_error_recording.py``: a recorded error.

Ollama rejected a malformed base64 image with a 400; llama-stack recorded it as an
``is_exception`` recording. relaystack replays it as the same status and the same body.
"""

from __future__ import annotations

from collections.abc import Callable

import openai
import pytest

from .conftest import TEXT_MODEL, Clients, llama_id

Make = Callable[[str], Clients]


def test_provider_rejects_invalid_base64_image(clients: Make, replaying: bool) -> None:
    c = clients(llama_id("test_provider_error_recording.py",
                         "TestProviderErrorRecording::test_provider_rejects_invalid_base64_image", "txt=" + TEXT_MODEL))
    message = {"role": "user", "content": [
        {"type": "text", "text": "What is in this image?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,not_valid_base64_data!!!"}},
    ]}
    with pytest.raises(openai.BadRequestError) as caught:
        c.openai.chat.completions.create(model=TEXT_MODEL, messages=[message])
    assert caught.value.status_code == 400
    if replaying:
        body = caught.value.body
        assert isinstance(body, dict) and body["type"] == "invalid_request_error"
        assert "invalid image input" in body["message"]
