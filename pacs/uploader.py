"""The spool to the bucket: every acknowledged instance uploaded, with retries, then removed."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from pacs.spool import Spool, Spooled

logger = logging.getLogger(__name__)


class ObjectStore(Protocol):
    def put(self, key: str, data: bytes) -> None: ...


class S3Store:
    """The upload bucket. Its default encryption (SSE-KMS, template.yaml) applies to every object."""

    def __init__(self, s3: Any, bucket: str) -> None:
        self._s3 = s3
        self._bucket = bucket

    def put(self, key: str, data: bytes) -> None:
        self._s3.put_object(Bucket=self._bucket, Key=key, Body=data, ContentType="application/dicom")


class Uploader:
    """Uploads what the spool holds, oldest first; a failed upload stays in the spool and is retried
    after ``backoff`` seconds (doubling up to ``max_backoff``)."""

    def __init__(
        self,
        spool: Spool,
        store: ObjectStore,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.spool = spool
        self.store = store
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._sleep = sleep
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def upload_pending(self) -> int:
        """One pass over the spool: the number uploaded. Stops at the first failure (kept for later)."""
        uploaded = 0
        for item in self.spool.pending():
            if not self._upload(item):
                break
            uploaded += 1
        return uploaded

    def _upload(self, item: Spooled) -> bool:
        try:
            self.store.put(item.key, item.read())
        except Exception as exc:  # noqa: BLE001 - any failure keeps the instance in the spool for a retry
            logger.warning("upload failed, kept in the spool for a retry", extra={"error": type(exc).__name__})
            return False
        self.spool.done(item)
        return True

    def notify(self) -> None:
        """A new instance is in the spool."""
        self._wake.set()

    def run(self) -> None:
        delay = self.backoff
        while not self._stop.is_set():
            self._wake.clear()
            self.upload_pending()
            if len(self.spool):
                self._sleep(delay)
                delay = min(delay * 2, self.max_backoff)
                continue
            delay = self.backoff
            self._wake.wait(timeout=5.0)

    def start(self) -> Uploader:
        self._thread = threading.Thread(target=self.run, name="spool-uploader", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
