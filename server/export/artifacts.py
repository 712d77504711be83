"""Content-addressed artifacts: each exported model is stored once under its sha256."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict


class ArtifactStore:
    """In-memory, bounded by total bytes (least recently used artifacts go first)."""

    def __init__(self, max_bytes: int = 512 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._data: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def put(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        with self._lock:
            if sha in self._data:
                self._data.move_to_end(sha)
                return sha
            self._data[sha] = data
            self._size += len(data)
            while self._size > self.max_bytes and len(self._data) > 1:
                _, old = self._data.popitem(last=False)
                self._size -= len(old)
        return sha

    def get(self, sha: str) -> bytes | None:
        with self._lock:
            data = self._data.get(sha)
            if data is not None:
                self._data.move_to_end(sha)
            return data
