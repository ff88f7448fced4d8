"""How ``relaystack run`` serves: bind the port first, build the app once, say "ready" once.

- The port is bound (and listening) before anything else, so a port in use is one clear
  line, and "ready" (printed when the app's start-up finished) always means connections
  are accepted.
- One worker serves the app the CLI already built to check the config: built once, so its
  warnings and "replay: N recordings indexed" are printed once. With ``--workers N`` every
  worker process builds its own app (quietly: the CLI printed the warnings) and one of them,
  the first to claim it, prints the start-up details. The workers list each provider's
  models once between them: the first to take the lock on the start-up's discovery file
  lists, the others read the file (``relaystack.shared_discovery``).
- uvicorn runs with ``GuardedHttpToolsProtocol`` (header deadline, header size limit,
  connection and request caps from ``server:`` in run.yaml).
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from relaystack.config import ServerConfig

if TYPE_CHECKING:
    from relaystack.api.app import RelaystackApp

__all__ = ["PortError", "ServeOptions", "bind_socket", "serve"]


class PortError(Exception):
    """The address cannot be listened on; the message is one line naming the option to change."""


@dataclass(frozen=True, slots=True)
class ServeOptions:
    host: str
    port: int
    workers: int
    log_level: str
    log_format: str
    # how a worker process rebuilds the app: config, record_mode, recordings_dir
    run_args: dict[str, Any]


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``, or ``PortError`` naming ``--port`` / ``--host``."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise PortError(f"cannot listen on host {host!r}: {getattr(exc, 'strerror', None) or exc} "
                        "(check --host or server.host).") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise PortError(_bind_problem(host, port, exc)) from None
    sock.set_inheritable(True)
    return sock


def _bind_problem(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (f"port {port} on {host} is already in use: choose another with --port "
                "(or server.port in the run config).")
    if exc.errno == errno.EACCES:
        return f"port {port} on {host} needs more privileges: choose a port above 1023 with --port."
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{host} is not an address of this machine (check --host or server.host)."
    return f"cannot listen on {host}:{port}: {exc.strerror} (check --host and --port)."


def uvicorn_settings(server: ServerConfig, log_level: str) -> dict[str, Any]:
    """The uvicorn.Config arguments every relaystack server uses."""
    from relaystack.server.protocol import GuardedHttpToolsProtocol

    return {
        "http": GuardedHttpToolsProtocol,
        "loop": "auto",
        "lifespan": "on",
        "access_log": False,  # relaystack writes its own (relaystack.access)
        "log_config": None,  # relaystack's logging set-up applies to uvicorn's loggers too
        # uvicorn's own start-up lines repeat relaystack's ready line: warnings only, unless debugging
        "log_level": log_level if log_level == "debug" else "warning",
        "timeout_keep_alive": server.keepalive_timeout_s,
        "timeout_graceful_shutdown": 30,
        **_tls_settings(server),
    }


def _tls_settings(server: ServerConfig) -> dict[str, Any]:
    """llama-stack's server.tls_*: HTTPS, and client certificates when a CA file is given."""
    if server.tls_certfile is None:
        return {}
    import ssl

    settings: dict[str, Any] = {"ssl_certfile": str(server.tls_certfile), "ssl_keyfile": str(server.tls_keyfile)}
    if server.tls_cafile is not None:
        settings.update(ssl_ca_certs=str(server.tls_cafile), ssl_cert_reqs=ssl.CERT_REQUIRED)
    return settings


def connection_limits(server: ServerConfig) -> Any:
    from relaystack.server.protocol import ConnectionLimits

    return ConnectionLimits(
        max_header_bytes=server.max_header_bytes,
        header_timeout_s=server.header_timeout_s,
        max_connections=server.max_connections,
        max_concurrent_requests=server.max_concurrent_requests,
    )


def serve(app: RelaystackApp, sock: socket.socket, options: ServeOptions) -> None:
    """Serve until stopped (Ctrl-C, SIGTERM). ``sock`` comes from ``bind_socket``."""
    import uvicorn

    server = app.config.server
    url = f"{'https' if server.tls_certfile else 'http'}://{_url_host(options.host)}:{options.port}"
    if options.workers == 1:
        app.public_url = url
        config = uvicorn.Config(app, **uvicorn_settings(server, options.log_level))
        config.relaystack_limits = connection_limits(server)  # type: ignore[attr-defined]
        uvicorn.Server(config).run(sockets=[sock])
        return
    from uvicorn.supervisors import Multiprocess

    from relaystack.api.factory import RUN_ARGS_ENV

    claims = tempfile.mkdtemp(prefix="relaystack-")
    try:
        os.environ[RUN_ARGS_ENV] = orjson.dumps({
            **options.run_args, "log_level": options.log_level, "log_format": options.log_format,
            "url": url, "announce_file": os.path.join(claims, "announced"), "quiet": True,
            "discovery_file": os.path.join(claims, "discovery.json"),
        }).decode()
        config = uvicorn.Config("relaystack.api.factory:app_from_environment", factory=True,
                                workers=options.workers, **uvicorn_settings(server, options.log_level))
        config.relaystack_limits = connection_limits(server)  # type: ignore[attr-defined]
        Multiprocess(config, sockets=[sock]).run()
    finally:
        shutil.rmtree(claims, ignore_errors=True)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
