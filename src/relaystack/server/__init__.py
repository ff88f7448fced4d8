"""Serving the app: binding the port, uvicorn, and the connection limits it lacks."""

from relaystack.server.runner import PortError, ServeOptions, bind_socket, serve

__all__ = ["PortError", "ServeOptions", "bind_socket", "serve"]
