"""A small closed-loop load generator for reliability tests (not for speed: see bench/)."""

from __future__ import annotations

import http.client
import json
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class LoadResult:
    statuses: Counter[int | str] = field(default_factory=Counter)
    acknowledged: list[str] = field(default_factory=list)
    versions: Counter[str] = field(default_factory=Counter)
    retry_after: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def failures(self) -> dict[int | str, int]:
        return {k: v for k, v in self.statuses.items() if k != 200}


class Load:
    """``clients`` threads POSTing one-record /predict requests until :meth:`stop`."""

    def __init__(self, port: int, record: dict[str, Any], clients: int = 4) -> None:
        self.port = port
        self.record = record
        self.clients = clients
        self.result = LoadResult()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> LoadResult:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
        return self.result

    def wait_for(self, acknowledged: int, timeout: float = 30.0) -> None:
        deadline = threading.Event()
        timer = threading.Timer(timeout, deadline.set)
        timer.start()
        try:
            while len(self.result.acknowledged) < acknowledged and not deadline.is_set():
                deadline.wait(0.01)
        finally:
            timer.cancel()

    def _client(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        while not self._stop.is_set():
            request_id = uuid.uuid4().hex
            body = json.dumps({"records": [self.record], "request_id": request_id})
            try:
                conn.request("POST", "/predict", body, {"content-type": "application/json"})
                response = conn.getresponse()
                raw = response.read()
            except (OSError, http.client.HTTPException) as exc:
                self._note(type(exc).__name__)
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                self._stop.wait(0.01)
                continue
            self._note(response.status, request_id, raw, response.getheader("retry-after"))
        conn.close()

    def _note(
        self, status: int | str, request_id: str = "", raw: bytes = b"", retry: str | None = None
    ) -> None:
        with self.result.lock:
            self.result.statuses[status] += 1
            if status == 200:
                self.result.acknowledged.append(request_id)
                self.result.versions[json.loads(raw)["version"]] += 1
            if retry is not None:
                self.result.retry_after.append(retry)
