"""Front-end APIs translated to and from chat completions: OpenAI's Responses, Anthropic's Messages.

Each front-end turns its request into a chat-completions body and sends it through the same
pipeline as ``POST /v1/chat/completions`` (gate, router, provider), then translates the answer
back, JSON or stream. Nothing here calls a provider directly.
"""

from relaystack.frontends.messages_routes import MessagesRoutes
from relaystack.frontends.pipeline import Frontend
from relaystack.frontends.responses_routes import ResponsesRoutes

__all__ = ["Frontend", "MessagesRoutes", "ResponsesRoutes"]
