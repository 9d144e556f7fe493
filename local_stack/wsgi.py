"""A WSGI app served by waitress on a background thread: the local stack's endpoint, gateway and site."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from model.serving.serve import create_wsgi_server


class BackgroundServer:
    """A WSGI app (the endpoint, or the local stack's gateway) served by waitress on a background thread."""

    def __init__(
        self, app: Callable[..., Iterable[bytes]], host: str = "127.0.0.1", port: int = 0, threads: int = 4
    ) -> None:
        self._server = create_wsgi_server(app, host, port, threads)
        self.port: int = self._server.effective_port  # type: ignore[union-attr]
        self.url = f"http://{host}:{self.port}"
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wsgi-server", daemon=True)

    def _run(self) -> None:
        try:
            self._server.run()
        except OSError:
            # close() from another thread can pull the socket out from under select(); expected then.
            if not self._closing.is_set():
                raise

    def __enter__(self) -> BackgroundServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._closing.set()
        # Worker threads first: closing the server under a running task breaks its wake-up pipe.
        self._server.task_dispatcher.shutdown()  # type: ignore[union-attr]
        self._server.close()
