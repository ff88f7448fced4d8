"""Key format and hashing, the server secret, and the run.yaml shapes the gateway takes or refuses."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from relaystack.config import parse_config
from relaystack.errors import ConfigError
from relaystack.gateway.keys import hash_key, key_id_of, load_server_secret, new_key
from relaystack.gateway.settings import resolve_cors


def test_a_new_key_carries_its_public_id_and_256_random_bits() -> None:
    key_id, token = new_key()
    assert key_id.startswith("key-") and token.startswith("rsk-")
    assert key_id_of(token) == key_id
    assert key_id[4:] in token and len(token) - len("rsk-") - 12 - 1 == 43
    assert new_key()[1] != token


@pytest.mark.parametrize("token", ["", "sk-abc", "rsk-", "rsk-0123456789ab", "rsk-0123456789AB-" + "x" * 43,
                                   "rsk-0123456789ab_" + "x" * 43, "rsk-0123456789ab-" + "x" * 42])
def test_tokens_not_shaped_like_ours_have_no_id(token: str) -> None:
    assert key_id_of(token) is None


def test_the_hash_depends_on_the_server_secret() -> None:
    _, token = new_key()
    assert hash_key(b"one-secret-of-16+chars", token) != hash_key(b"two-secret-of-16+chars", token)
    assert token not in hash_key(b"one-secret-of-16+chars", token)


def _secret_in(directory: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    out.put(load_server_secret(None, Path(directory)))


def test_workers_starting_together_agree_on_one_generated_secret(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue = context.Queue()  # type: ignore[type-arg]
    processes = [context.Process(target=_secret_in, args=(str(tmp_path), out)) for _ in range(4)]
    for process in processes:
        process.start()
    secrets = {out.get(timeout=60) for _ in processes}
    for process in processes:
        process.join(timeout=60)
    assert len(secrets) == 1
    path = tmp_path / "key-secret"
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_server_secret(None, tmp_path) in secrets


def test_a_given_secret_is_used_and_must_not_be_short(tmp_path: Path) -> None:
    assert load_server_secret("s" * 32, tmp_path) == b"s" * 32
    assert not (tmp_path / "key-secret").exists()
    with pytest.raises(ConfigError, match="at least 16"):
        load_server_secret("short", tmp_path)


# -- run.yaml ---------------------------------------------------------------------------------
def config(**server: object) -> dict[str, object]:
    return {"version": 2, "server": server}


@pytest.mark.parametrize(("auth", "named"), [
    ({"provider_config": {"type": "oauth2_token", "jwks": {"uri": "https://x"}}}, "oauth2_token"),
    ({"provider_config": {"type": "github_token"}}, "github_token"),
    ({"provider_config": {"type": "custom", "endpoint": "http://x"}}, "custom"),
    ({"provider_config": {"type": "kubernetes"}}, "kubernetes"),
    ({"access_policy": [{"permit": {"actions": ["read"]}}]}, "access rules"),
    ({"provider_config": {"type": "virtual_keys", "oops": 1}}, "no other keys"),
])
def test_llama_stack_auth_shapes_relaystack_cannot_honour_stop_start_up(auth: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(config(auth=auth))
    assert named in str(raised.value) and "server.auth" in str(raised.value)


def test_virtual_keys_auth_quota_cors_and_pricing_are_read() -> None:
    parsed = parse_config({
        **config(
            auth={"provider_config": {"type": "virtual_keys"}, "default_limits": {"rpm": 10}},
            quota={"kvstore": {"type": "sqlite", "db_path": "/tmp/q.db"}, "anonymous_max_requests": 5},
            cors=True,
        ),
        "pricing": {"m": {"input_per_million": 1.5, "output_per_million": 2}},
    })
    assert parsed.server.auth is not None and parsed.server.auth.default_limits.rpm == 10
    assert parsed.server.quota is not None and parsed.server.quota.anonymous_max_requests == 5
    cors = resolve_cors(parsed.server.cors)
    assert cors is not None and cors.allow_origin_regex == r"https?://localhost:\d+"
    assert parsed.pricing["m"].output_per_million == 2


def test_an_empty_auth_section_means_virtual_keys() -> None:
    parsed = parse_config(config(auth={}))
    assert parsed.server.auth is not None and parsed.server.auth.provider_config == {"type": "virtual_keys"}


def test_cors_wildcard_with_credentials_is_refused() -> None:
    with pytest.raises(ConfigError, match="allow_credentials"):
        parse_config(config(cors={"allow_origins": ["*"], "allow_credentials": True}))


def test_half_a_tls_config_is_refused_instead_of_serving_plain_http() -> None:
    with pytest.raises(ConfigError, match=r"tls_certfile and server\.tls_keyfile"):
        parse_config(config(tls_cafile="/etc/ca.pem"))


def test_nothing_security_related_is_merely_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    parse_config(config(auth={}, cors=False, quota={}, tls_certfile="/c.pem", tls_keyfile="/k.pem"))
    assert "not supported" not in caplog.text and "ignored" not in caplog.text
