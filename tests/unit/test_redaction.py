"""One redaction mechanism: every form of every secret a request carries, on every path."""

from __future__ import annotations

import base64
import logging
from urllib.parse import quote

import pytest

from relaystack import logs, redaction
from relaystack.errors import UpstreamError
from relaystack.redaction import REDACTED, Redactor

KEY = "sk-unit-canary/0123456789+abcdef"


def test_every_form_of_a_secret_is_scrubbed_from_text() -> None:
    redactor = Redactor([KEY])
    for form in (KEY, KEY.replace("/", "\\/"), quote(KEY, safe=""), base64.b64encode(KEY.encode()).decode(),
                 base64.b64encode(b"Bearer " + KEY.encode()).decode()):
        assert KEY not in redactor.text(f"x {form} y")
        assert form not in redactor.text(f"x {form} y")


def test_short_values_are_never_treated_as_secrets() -> None:
    assert not Redactor(["short", None, ""])
    assert Redactor(["short"]).text("a short text") == "a short text"


def test_every_field_of_an_error_is_scrubbed() -> None:
    error = UpstreamError(f"bad {KEY}", status=401, type=f"t_{KEY}", param=f"Bearer {KEY}", code=KEY,
                          headers={"Retry-After": KEY})
    Redactor([KEY]).error(error)
    assert KEY not in repr(error.to_dict()) and KEY not in repr(error.headers) and KEY not in str(error)
    assert error.to_dict()["error"]["param"] == f"Bearer {REDACTED}"


def test_wire_scrubbing_keeps_json_valid_and_costs_nothing_when_clean() -> None:
    redactor = Redactor([KEY])
    clean = b'data: {"a":"b"}\n\n'
    assert redactor.wire(clean) is clean
    assert redactor.wire(b'{"k":"' + KEY.replace("/", "\\/").encode() + b'"}') == b'{"k":"[REDACTED]"}'


def test_a_request_redactor_also_knows_the_process_secrets() -> None:
    process = Redactor(["process-wide-secret-1"])
    request = Redactor(["request-secret-12345"], parent=process)
    assert request.text("process-wide-secret-1 request-secret-12345") == f"{REDACTED} {REDACTED}"
    assert request.wire(b"process-wide-secret-1") == b"process-wide-secret-1"  # a stream echoes its own call only


def test_log_records_pass_the_bound_request_redactor_and_the_process_one(caplog: pytest.LogCaptureFixture) -> None:
    redaction.install_log_redaction()
    redaction.register_environment({"SOME_PROVIDER_API_KEY": "env-canary-abcdef123456", "HOME": "/root/home1"})
    log = logging.getLogger("relaystack.test")
    redaction.bind_request(Redactor(["request-canary-987654321"], parent=redaction.PROCESS))
    try:
        with caplog.at_level(logging.INFO, logger="relaystack.test"):
            log.info("keys %s and %s in %s", "env-canary-abcdef123456", "request-canary-987654321", "/root/home1")
            try:
                secret = "request-" + "canary-987654321"  # not in the traceback's source line
                raise ValueError(f"boom {secret}")
            except ValueError:
                log.exception("failed")
    finally:
        redaction.bind_request(redaction.PROCESS)
    text = caplog.text
    assert "env-canary" not in text and "request-canary" not in text
    assert f"keys {REDACTED} and {REDACTED} in /root/home1" in text and "boom [REDACTED]" in text
    # relaystack's own formatters render the exception themselves
    for formatter in (logs.TextFormatter(), logs.JsonFormatter()):
        assert "request-canary" not in formatter.format(caplog.records[-1])


def test_key_like_values_of_provider_data() -> None:
    data = {"together_api_key": "a" * 10, "nested": {"client_secret": "b" * 10}, "region": "c" * 10, "max_tokens": 5}
    assert sorted(redaction.key_like_values(data)) == ["a" * 10, "b" * 10]
