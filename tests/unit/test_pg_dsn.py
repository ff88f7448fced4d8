"""PostgreSQL DSNs: the forms users write become a URL asyncpg parses, a malformed one is a clear
ConfigError, and neither that error nor the description messages and /v1/health show ever holds
the password (written percent-encoded or, by mistake, not)."""

from __future__ import annotations

import string
from urllib.parse import quote, unquote, urlsplit

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from relaystack.errors import ConfigError
from relaystack.storage.pg_dsn import build_dsn, describe_dsn, normalize_dsn
from relaystack.storage.postgres import PgSettings, PostgresStore

DESCRIBED = "db.example:5432/relay"
passwords = st.text(alphabet=string.printable.strip() + " é€", min_size=6, max_size=24)


@given(passwords)
def test_describing_a_dsn_never_shows_its_password_nor_raises(password: str) -> None:
    assume(password not in DESCRIBED + "(a malformed DSN)")
    for written in (password, quote(password, safe="")):
        described = describe_dsn(f"postgresql://relay:{written}@db.example:5432/relay?sslmode=prefer")
        assert described in (DESCRIBED, "(a malformed DSN)") and password not in described


@given(passwords)
def test_a_dsn_is_accepted_or_refused_without_quoting_its_password(password: str) -> None:
    assume(password not in "storage.dsn postgresql://user:password@host:5432/database")
    try:
        url = normalize_dsn(f"postgresql://relay:{password}@db.example:5432/relay")
    except ConfigError as exc:
        assert password not in str(exc) and "percent-encode" in str(exc)
    else:
        assert urlsplit(url).hostname == "db.example"
    encoded = normalize_dsn(f"postgresql://relay:{quote(password, safe='')}@db.example:5432/relay")
    assert unquote(urlsplit(encoded).password or "") == password


@given(passwords)
def test_built_dsns_round_trip_any_password(password: str) -> None:
    url = urlsplit(build_dsn(host="db.example", port=5432, database="my db", user="us:er", password=password))
    assert (url.hostname, url.port, unquote(url.path), unquote(url.username or "")) == (
        "db.example", 5432, "/my db", "us:er")
    assert unquote(url.password or "") == password


def test_libpq_key_value_strings_become_urls() -> None:
    url = urlsplit(normalize_dsn(r"host=db.example port = 5433 dbname=relay user=u password='p w\'q' sslmode=require"))
    assert (url.hostname, url.port, url.path, url.username, unquote(url.password or "")) == (
        "db.example", 5433, "/relay", "u", "p w'q")
    assert url.query == "sslmode=require"
    assert describe_dsn("host=db port=5433 dbname=x user=u password=pw") == "db:5433/x"
    with pytest.raises(ConfigError, match="neither a URL"):
        normalize_dsn("just some text")
    with pytest.raises(ConfigError, match="no closing quote"):
        normalize_dsn("host=h password='never closed")


@pytest.mark.parametrize(("dsn", "url"), [
    ("postgresql+asyncpg://u:p@h:5432/db", "postgresql://u:p@h:5432/db"),  # llama-stack's engine URL
    ("postgres://u@h/db", "postgresql://u@h/db"),
    ("  postgresql://h/db\n", "postgresql://h/db"),
])
def test_url_forms_are_normalized(dsn: str, url: str) -> None:
    assert normalize_dsn(dsn) == url


@pytest.mark.parametrize(("dsn", "message"), [
    ("", "storage.dsn is empty"),
    ("mysql://u:secret-pw@h/db", "its scheme is not 'postgresql' (found 'mysql')"),
    ("postgresql://u:secret-pw@h:99999/db", "its port is not a number 0-65535"),
    ("postgresql://u:secret/pw@h/db", "the part before '@' is cut short"),
    ("postgresql://u:secret-pw@h:port/db", "its port is not a number"),
])
def test_malformed_dsns_are_clear_errors_without_the_password(dsn: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        normalize_dsn(dsn)
    assert message in str(caught.value) and "secret" not in str(caught.value)


async def test_a_client_side_driver_error_at_start_is_named_not_quoted() -> None:
    """asyncpg's own complaints (not PostgreSQL's) may quote the DSN: only their class is shown."""
    store = PostgresStore(PgSettings("postgresql://u:secret-pw@127.0.0.1:9/db?sslmode=bogus", start_timeout_s=0.5))
    with pytest.raises(ConfigError) as caught:
        await store.start()
    assert "127.0.0.1:9/db" in str(caught.value) and "ClientConfigurationError" in str(caught.value)
    assert "secret" not in str(caught.value)
    with pytest.raises(ConfigError, match="cut short"):
        PostgresStore(PgSettings("postgresql://u:sec#ret@127.0.0.1/db"))
