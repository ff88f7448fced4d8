"""PostgreSQL connection strings: checked, normalized, built and described without their secrets.

``normalize_dsn`` takes what users write and gives asyncpg a URL it parses:

- ``postgresql://`` / ``postgres://`` URLs, and SQLAlchemy's ``postgresql+asyncpg://`` (llama-stack
  writes its store URLs that way), checked up front so a typo is a clear ``ConfigError`` at
  start-up rather than asyncpg's ``invalid literal for int()``;
- libpq's ``key=value`` connection strings (``host=db port=5432 dbname=x user=u password='p w'``),
  which asyncpg does not parse, rebuilt as a URL.

``build_dsn`` makes the URL from parts (llama-stack's ``host``/``port``/``db``/``user``/``password``),
percent-encoding each. ``describe_dsn`` is what messages and ``/v1/health`` show: ``host:port/db``,
never the user or the password, and it never raises.

No message here ever quotes the connection string or a piece of it that could be the password:
a password with an unencoded ``/``, ``?`` or ``#`` cuts a URL in the wrong place, so the "port"
or "host" a parser sees may well be part of it.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode, urlsplit

from relaystack.errors import ConfigError

__all__ = ["build_dsn", "describe_dsn", "normalize_dsn"]

_SCHEMES = ("postgresql", "postgres")
_URL_SHAPE = "postgresql://user:password@host:5432/database"
_ENCODE_HINT = (
    "If the user or password contains one of / ? # @ : % or a space, percent-encode it "
    "(python -c \"import urllib.parse, getpass; print(urllib.parse.quote(getpass.getpass(), safe=''))\")."
)
# libpq's key=value keywords that are a URL's parts; any other keyword goes in the query string
_URL_PARTS = ("host", "hostaddr", "port", "dbname", "user", "password")


def normalize_dsn(dsn: str, key: str = "storage.dsn") -> str:
    """The DSN as a ``postgresql://`` URL asyncpg accepts; ``ConfigError`` (naming ``key``) if it
    cannot be one. The message never repeats the DSN."""
    text = dsn.strip()
    if not text:
        raise ConfigError(f"{key} is empty: set it to a URL like {_URL_SHAPE}.")
    if "://" not in text:
        return _from_key_values(text, key)
    scheme, rest = text.split("://", 1)
    if scheme.lower().split("+", 1)[0] not in _SCHEMES:
        raise ConfigError(
            f"{key} must be a PostgreSQL URL ({_URL_SHAPE}); its scheme is not 'postgresql'"
            + (f" (found '{scheme}')" if scheme.isascii() and scheme.replace("+", "").isalnum() else "")
            + "."
        )
    url = "postgresql://" + rest
    try:
        parts = urlsplit(url)  # ValueError: an unmatched [ or ] in the host part
    except ValueError:
        raise ConfigError(f"{key} cannot be parsed: its host part has an unmatched [ or ]. {_ENCODE_HINT}") from None
    if rest.count("@") != parts.netloc.count("@"):  # an unencoded / ? or # before an '@' ended the host part
        raise ConfigError(f"{key} cannot be parsed: the part before '@' is cut short. {_ENCODE_HINT}")
    try:
        parts.port  # noqa: B018  (parses the port: ValueError when it is not a number)
    except ValueError:
        raise ConfigError(f"{key} cannot be parsed: its port is not a number 0-65535. {_ENCODE_HINT}") from None
    return url


def build_dsn(
    *, host: str, port: int | str | None, database: str, user: str | None, password: str | None,
    query: dict[str, str] | None = None,
) -> str:
    """A URL from its parts, each percent-encoded (a password may hold any character)."""
    params = dict(query or {})
    auth = ""
    if user:
        auth = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "") + "@"
    if host.startswith("/") or "," in host:  # a Unix socket directory, or several hosts
        params = {"host": host, **({"port": str(port)} if port else {}), **params}
        netloc = auth
    else:
        netloc = auth + (f"[{host}]" if ":" in host else quote(host, safe=".-_~")) + (f":{port}" if port else "")
    return f"postgresql://{netloc}/{quote(database, safe='')}" + (f"?{urlencode(params)}" if params else "")


def describe_dsn(dsn: str) -> str:
    """``host:port/database`` for messages and /v1/health: never the user or the password."""
    try:
        parts = urlsplit(normalize_dsn(dsn))
        host = parts.hostname or _query_value(parts.query, "host") or "localhost"
        port = parts.port or _query_value(parts.query, "port") or 5432
        database = parts.path.lstrip("/") or "(default)"
    except (ConfigError, ValueError):
        return "(a malformed DSN)"
    return f"{host}:{port}/{database}"


def _query_value(query: str, name: str) -> str | None:
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        if key == name and "@" not in value:
            return value
    return None


def _from_key_values(text: str, key: str) -> str:
    """libpq's ``keyword = value`` form (values may be single-quoted, with ``\\'`` and ``\\\\``)."""
    pairs = _parse_key_values(text, key)
    query = {k: v for k, v in pairs.items() if k not in _URL_PARTS}
    host = pairs.get("host") or pairs.get("hostaddr") or "localhost"
    port = pairs.get("port")
    if port is not None and not port.isdigit():
        raise ConfigError(f"{key} cannot be parsed: its port is not a number 0-65535.")
    return build_dsn(host=host, port=port, database=pairs.get("dbname", ""), user=pairs.get("user"),
                     password=pairs.get("password"), query=query)


def _parse_key_values(text: str, key: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        if i == n:
            break
        start = i
        while i < n and (text[i].isalnum() or text[i] == "_"):
            i += 1
        name = text[start:i]
        while i < n and text[i].isspace():
            i += 1
        if not name or i == n or text[i] != "=":
            raise ConfigError(
                f"{key} is neither a URL ({_URL_SHAPE}) nor libpq's 'host=... port=... dbname=... "
                "user=... password=...' form."
            )
        i += 1
        while i < n and text[i].isspace():
            i += 1
        value, i = _read_value(text, i, key)
        pairs[name] = value
    return pairs


def _read_value(text: str, i: int, key: str) -> tuple[str, int]:
    out: list[str] = []
    n = len(text)
    quoted = i < n and text[i] == "'"
    if quoted:
        i += 1
    while i < n:
        char = text[i]
        if quoted and char == "'":
            return "".join(out), i + 1
        if not quoted and char.isspace():
            break
        if char == "\\" and i + 1 < n:
            i += 1
            char = text[i]
        out.append(char)
        i += 1
    if quoted:
        raise ConfigError(f"{key} cannot be parsed: a quoted value has no closing quote.")
    return "".join(out), i
