"""llama-stack v0.7.1's ``tests/integration/inference/test_vision_inference.py``, the 3 cases its run named.

Two tests link the image; relaystack's Ollama provider downloads it (as llama-stack's adapter did)
and sends it as base64; replay serves the download from ``derive_download.py``'s recording, so the
chat request relaystack sends is byte for byte the one llama-stack recorded. The third test sends
the image inline itself (the bytes come from the same recording: llama-stack read them from its
``dog.png``, which this repository does not copy).
"""

from __future__ import annotations

import base64
from collections.abc import Callable

from .conftest import VISION_MODEL, Clients, llama_id
from .derive_download import FOLDER, IMAGE_URL, recorded_image

MODULE = "test_vision_inference.py"
VIS = "vis=" + VISION_MODEL
PROMPT = {"type": "text", "text": "Describe what is in this image."}
Make = Callable[[str], Clients]


def test_the_derived_download_is_the_image_every_recorded_request_carries() -> None:
    tests = [llama_id(MODULE, name, VIS) for name in (
        "test_image_chat_completion_non_streaming", "test_image_chat_completion_streaming",
        "test_image_chat_completion_base64")]
    images = {recorded_image(FOLDER, t) for t in tests}
    assert len(images) == 1
    [(content_type, data)] = images
    assert content_type == "image/png" and data.startswith(b"\x89PNG")


def test_image_chat_completion_non_streaming(clients: Make) -> None:
    c = clients(llama_id(MODULE, "test_image_chat_completion_non_streaming", VIS))
    message = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": IMAGE_URL}}, PROMPT]}
    response = c.lsc.chat.completions.create(model=VISION_MODEL, messages=[message], stream=False)
    content = response.choices[0].message.content.lower().strip()
    assert content and any(word in content for word in ("dog", "puppy", "pup"))


def test_image_chat_completion_streaming(clients: Make) -> None:
    c = clients(llama_id(MODULE, "test_image_chat_completion_streaming", VIS))
    message = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": IMAGE_URL}}, PROMPT]}
    stream = c.lsc.chat.completions.create(model=VISION_MODEL, messages=[message], stream=True)
    text = "".join((chunk.choices[0].delta.content or "").lower() for chunk in stream if chunk.choices)
    assert text and any(word in text for word in ("dog", "puppy", "pup"))


def test_image_chat_completion_base64(clients: Make) -> None:
    c = clients(llama_id(MODULE, "test_image_chat_completion_base64", VIS))
    _, data = recorded_image()
    url = "data:image/png;base64," + base64.b64encode(data).decode()
    message = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}, PROMPT]}
    response = c.lsc.chat.completions.create(model=VISION_MODEL, messages=[message], stream=False)
    assert response.choices[0].message.content.strip()
