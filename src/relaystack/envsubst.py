"""llama-stack's ``${env.X}`` substitution, applied to every string of a run.yaml.

| syntax              | result                                                         |
|---------------------|----------------------------------------------------------------|
| ``${env.X}``        | X's value; an error naming the YAML path if X is unset or empty |
| ``${env.X:=dflt}``  | X if set and non-empty, else ``dflt`` (which may be empty)     |
| ``${env.X:+value}`` | ``value`` if X is set and non-empty, else empty                |

A string in which a substitution happened is then typed like llama-stack does:
``""`` becomes ``None``, ``true``/``false`` booleans, then int, then float.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from relaystack.errors import ConfigError

__all__ = ["DISABLED", "substitute"]

DISABLED = "__disabled__"
_PATTERN = re.compile(r"\$\{env\.([A-Za-z0-9_]+)(?:(:=|:\+)([^}]*))?\}")


def substitute(value: Any, env: Mapping[str, str] | None = None, path: str = "") -> Any:
    """Return ``value`` with every ``${env...}`` replaced. ``path`` names the key in errors."""
    env = os.environ if env is None else env
    if isinstance(value, dict):
        return {k: substitute(v, env, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute_item(item, env, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, str):
        return _substitute_string(value, env, path)
    return value


def _substitute_item(item: Any, env: Mapping[str, str], path: str) -> Any:
    # A provider whose id resolves to nothing is disabled: its config is not expanded,
    # so unset variables it requires do not fail start-up.
    if isinstance(item, dict) and "provider_id" in item:
        provider_id = _substitute_string(item["provider_id"], env, f"{path}.provider_id") \
            if isinstance(item["provider_id"], str) else item["provider_id"]
        if provider_id in (None, "", DISABLED):
            return {**item, "provider_id": None}
        return {**substitute({k: v for k, v in item.items() if k != "provider_id"}, env, path),
                "provider_id": provider_id}
    return substitute(item, env, path)


def _substitute_string(text: str, env: Mapping[str, str], path: str) -> Any:
    if "${" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        current = env.get(name, "")
        if op == ":=":
            return current or arg
        if op == ":+":
            return arg if current else ""
        if not current:
            raise ConfigError(
                f"Environment variable '{name}' not set or empty at {path or '<root>'}. "
                f"Use ${{env.{name}:=default_value}} to provide a default value, "
                f"${{env.{name}:+value_if_set}} to make the field conditional, or set the variable."
            )
        return current

    result = _PATTERN.sub(replace, text)
    if result == text:
        return text
    if result.startswith("~"):
        result = os.path.expanduser(result)
    return _typed(result)


def _typed(text: str) -> Any:
    if text == "":
        return None
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text
