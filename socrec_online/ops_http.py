"""The worker's HTTP side door: ``/metrics`` (the registry of ``socrec_online.metrics``) plus the
routes other modules register beside it (``/healthz``, ``/readyz``, ``/debug/state``), served on a
daemon thread so a busy event loop or engine never delays a scrape or a probe."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

import orjson

from socrec_online.metrics import REGISTRY

_servers: list[Any] = []

Route = Callable[[], tuple[int, bytes]]
"""A GET handler on the metrics server: () -> (HTTP status, JSON body). Runs on the server's thread."""
_routes: dict[str, Route] = {}


def add_route(path: str, handler: Route) -> None:
    """Serve ``handler`` at ``path`` (e.g. ``/healthz``) beside ``/metrics`` on the metrics server."""
    _routes[path] = handler


def remove_route(path: str) -> None:
    _routes.pop(path, None)


def _wsgi_app() -> Callable[..., Any]:
    from prometheus_client import make_wsgi_app

    prom = make_wsgi_app(REGISTRY)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        handler = _routes.get(environ.get("PATH_INFO") or "")
        if handler is None:
            return list(prom(environ, start_response))
        try:
            status, body = handler()
        except Exception as exc:  # noqa: BLE001 - a failing check is an answer (503), never a dead server
            status, body = 503, orjson.dumps({"status": "error", "reason": repr(exc)[:200]})
        phrase = {200: "OK", 503: "Service Unavailable"}.get(status, "Status")
        start_response(
            f"{status} {phrase}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]

    return app


def start_metrics_server(host: str = "127.0.0.1", port: int = 0) -> int:
    """Serve :data:`REGISTRY` (and :func:`add_route` routes) over HTTP on a daemon thread.

    Port 0 picks a free one. Returns the port.
    """
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from prometheus_client.exposition import ThreadingWSGIServer

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingWSGIServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    server = make_server(host, port, _wsgi_app(), Server, handler_class=Quiet)
    threading.Thread(target=server.serve_forever, daemon=True, name="socrec-metrics").start()
    _servers.append(server)
    return int(server.server_port)


def stop_metrics_server() -> None:
    """Stop every server started here (the demo exits with nothing left listening)."""
    while _servers:
        server = _servers.pop()
        server.shutdown()
        server.server_close()
