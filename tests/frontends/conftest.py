"""Fixtures of the front-end tests: the shared fake-Together stack (tests/conftest.py) and SDK clients."""

from __future__ import annotations

import anthropic
import pytest
from openai import OpenAI

from support.stack import CHAT_MODEL, Stack


@pytest.fixture
def openai_client(stack: Stack) -> OpenAI:
    return OpenAI(base_url=f"{stack.base_url}/v1", api_key="unused", max_retries=0, timeout=30)


@pytest.fixture
def anthropic_client(stack: Stack) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=stack.base_url, api_key="unused", max_retries=0, timeout=30)


@pytest.fixture
def chat_model() -> str:
    return CHAT_MODEL
