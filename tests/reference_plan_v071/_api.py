"""What both clients raise for an HTTP error status, so one ``pytest.raises`` covers either."""

from __future__ import annotations

import llama_stack_client
import openai

__all__ = ["API_ERRORS"]

# both carry .status_code and the server's error body in str(exc)
API_ERRORS = (openai.APIStatusError, llama_stack_client.APIStatusError)
