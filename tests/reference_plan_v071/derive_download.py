"""Write the one recording the v0.7.1 plan derives rather than copies: the download of dog.png.

llama-stack's Ollama adapter downloaded the image of its two URL vision tests itself, outside its
recorder, and sent it to Ollama as a base64 data URL; that request *is* recorded, byte for byte.
relaystack downloads through the upstream seam, so its replay needs the download as a recording
too. This script takes the bytes from the recorded chat request and writes them as the answer to
``GET <the test's image URL>``, in the shared fallback folder (no test id: both URL tests use it),
with relaystack's own writer. ``test_vision_inference.py`` checks that the file and the recorded
requests agree, so nothing here is invented.

    .venv/bin/python -m tests.reference_plan_v071.derive_download   # from the repository root
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from relaystack.recording.codec import build_binary_response
from relaystack.recording.identity import identity_of_request
from relaystack.recording.layout import RecordingFormat
from relaystack.recording.redact import SecretSet
from relaystack.recording.store import RecordingStore
from relaystack.upstream.base import UpstreamRequest

# the image the reference's URL vision tests link to (llama-stack's repository, before the rename)
IMAGE_URL = "https://raw.githubusercontent.com/meta-llama/llama-stack/main/tests/integration/inference/dog.png"
FOLDER = Path(__file__).resolve().parents[1] / "recordings" / "llamastack-v0.7.1"
SOURCE_TEST = ("tests/integration/inference/test_vision_inference.py::"
               "test_image_chat_completion_non_streaming[vis=ollama/llama3.2-vision:11b]")


def recorded_image(folder: Path = FOLDER, test_id: str = SOURCE_TEST) -> tuple[str, bytes]:
    """(content type, bytes) of the image in the chat request the test recorded."""
    for path in sorted(folder.rglob("recordings/*.json")):
        doc = json.loads(path.read_text())
        if doc.get("test_id") != test_id or doc["request"]["endpoint"] != "/v1/chat/completions":
            continue
        for part in doc["request"]["body"]["messages"][0]["content"]:
            if part["type"] == "image_url":
                head, _, data = part["image_url"]["url"].partition(";base64,")
                return head.removeprefix("data:"), base64.b64decode(data)
    raise LookupError(f"no recorded image for {test_id}")


def main() -> None:
    content_type, data = recorded_image()
    store = RecordingStore(FOLDER, RecordingFormat.PER_TEST)
    identity = identity_of_request(UpstreamRequest("GET", IMAGE_URL, {"Accept": "image/*"}))
    path = store.write(identity, build_binary_response(content_type, data), SecretSet(()))
    print(f"wrote {path} ({len(data)} bytes of {content_type})")


if __name__ == "__main__":
    main()
