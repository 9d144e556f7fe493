"""A TCP proxy that can cut a connection in the middle of a transfer: the dropped network of the fault tests."""

from __future__ import annotations

import contextlib
import socket
import threading


class CuttingProxy:
    """Forwards 127.0.0.1:``port`` to ``upstream``; ``cut_next(n, after)`` makes each of the next ``n``
    connections drop (both ends, abruptly) once ``after`` bytes have gone from the client upstream."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self._upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._cuts_left = 0
        self._cut_after = 0
        self.connections = 0
        self.cuts = 0
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_next(self, connections: int, after_bytes: int) -> None:
        with self._lock:
            self._cuts_left, self._cut_after = connections, after_bytes

    def close(self) -> None:
        self._closed.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                cut = self._cut_after if self._cuts_left > 0 else None
                self._cuts_left = max(0, self._cuts_left - 1)
            try:
                server = socket.create_connection(self._upstream, timeout=5)
            except OSError:
                client.close()  # nothing upstream: the caller sees a refused or dropped connection
                continue
            server.settimeout(None)
            threading.Thread(target=self._pump, args=(client, server, cut), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, None), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, cut_after: int | None) -> None:
        sent = 0
        try:
            while data := source.recv(65536):
                if cut_after is not None and sent + len(data) > cut_after:
                    sink.sendall(data[: max(0, cut_after - sent)])
                    with self._lock:
                        self.cuts += 1
                    break
                sink.sendall(data)
                sent += len(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
