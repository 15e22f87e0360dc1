"""`anirec serve`: a fitted recommender folder as an HTTP API and a web page."""

from __future__ import annotations

import ipaddress
import socket
import time
from pathlib import Path
from typing import List, Optional

import typer

from .app import app
from ..errors import AnirecError, warn


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@app.command()
def serve(
    recommender: Path = typer.Option(..., "--recommender", help="A folder written by `anirec fit` (loaded once)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind. The default answers this machine only; "
                             "0.0.0.0 answers the network (there is no authentication)."),
    port: int = typer.Option(8000, "--port", help="TCP port (0: any free one)."),
    cors_origin: Optional[List[str]] = typer.Option(None, "--cors-origin", help="Allow browser pages from this origin "
                                                    "(repeatable, e.g. https://my.site); CORS is off without it."),
    catalog: Optional[Path] = typer.Option(None, "--catalog", help="Refuse the folder unless it was fitted on this catalog "
                                           "parquet (and serve that catalog's columns)."),
) -> None:
    """Serve a fitted recommender: JSON API (docs at /docs) and a web page at / ."""
    start = time.perf_counter()
    if not 0 <= port <= 65535:
        raise typer.BadParameter(f"{port}: a port is 0-65535", param_hint="--port")
    import uvicorn

    from ..data import read_catalog
    from ..fitted import load_fitted
    from ..server.app import create_app
    from ..service import Service

    fitted = load_fitted(recommender, read_catalog(catalog) if catalog is not None else None)
    service = Service(fitted).warm()
    web = create_app(service, cors_origin or ())
    if not _loopback(host):
        warn(f"--host {host}: reachable from other machines, and anirec has no authentication.")
    sock = _listen(host, port)
    server = uvicorn.Server(uvicorn.Config(web, host=host, port=port, log_level="warning", access_log=False))
    bound = sock.getsockname()
    typer.echo(f"serving {fitted.method} ({len(service.ids):,} anime) from {recommender} on "
               f"http://{bound[0]}:{bound[1]}  (API docs: /docs; ready in {time.perf_counter() - start:.2f} s)",
               err=False)
    server.run(sockets=[sock])


def _listen(host: str, port: int) -> socket.socket:
    """A bound socket, or one line saying why not (uvicorn would log its own error and exit 1)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise AnirecError(f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc}); "
                          "pick another --port, or an address of this machine.") from None
    return sock
