"""The access lines `udun serve-ocsp` writes a turn of its loop at a time
(webapi.observability.batch_access_lines): nothing is written before the turn ends, then
every line at once, each the line logging's path writes (same keys, order and values); and
no batching where the lines would not go straight to udun's JSON handler."""
from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from typing import Any, Callable


from webapi import observability as obs


def _lines(settings: Any) -> list[dict[str, Any]]:
    with open(settings.log_file, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _answer(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    environ[obs.ROUTE] = "/ocsp"
    start_response("200 OK", [("Content-Type", "application/ocsp-response")])
    return [b"0" * 17]


def _call(rid: str) -> None:
    environ = {"PATH_INFO": "/ocsp", "REQUEST_METHOD": "POST", "REMOTE_ADDR": "127.0.0.9", "HTTP_X_REQUEST_ID": rid}
    assert obs.Observed(_answer)(environ, lambda *a: None) == [b"0" * 17]


@contextlib.contextmanager
def _as_serve_ocsp(settings: Any) -> Iterator[None]:
    """The root logger as `udun serve-ocsp` has it: udun's JSON handler alone (pytest's
    capture handlers, added for each test phase, set aside meanwhile)."""
    obs.configure_logging(settings)
    root = logging.getLogger()
    kept = root.handlers[:]
    root.handlers = [h for h in kept if hasattr(h, "_udun_target")]
    try:
        yield
    finally:
        obs.flush_access_lines()
        obs._batch = None              # the rest of the run logs through logging again
        root.handlers = kept


def test_lines_wait_for_the_turn_then_match_loggings(settings) -> None:  # type: ignore[no-untyped-def]
    with _as_serve_ocsp(settings):
        tag = os.urandom(5).hex()
        _call(f"batch-{tag}-reference")                       # through logging: the line to match
        turn: list[Callable[[], None]] = []
        assert obs.batch_access_lines(turn.append)
        for i in range(3):
            _call(f"batch-{tag}-{i}")
        assert len(turn) == 1                                 # one write scheduled for the turn
        assert not [e for e in _lines(settings) if e.get("request_id", "").startswith(f"batch-{tag}-") and
                    e["request_id"] != f"batch-{tag}-reference"]
        turn.pop()()
        by_id = {e["request_id"]: e for e in _lines(settings) if e.get("request_id", "").startswith(f"batch-{tag}-")}
        reference = by_id.pop(f"batch-{tag}-reference")
        assert sorted(by_id) == [f"batch-{tag}-{i}" for i in range(3)]
        for line in by_id.values():
            assert list(line) == list(reference)              # the same keys in the same order
            assert {k: v for k, v in line.items() if k not in ("timestamp", "duration_ms", "request_id")} == \
                {k: v for k, v in reference.items() if k not in ("timestamp", "duration_ms", "request_id")}
            assert line["pid"] == os.getpid() and line["bytes"] == 17 and line["remote_addr"] == "127.0.0.9"
        _call(f"batch-{tag}-after")
        assert len(turn) == 1                                 # the next turn gets its own write


def test_a_full_batch_is_written_at_once(settings) -> None:  # type: ignore[no-untyped-def]
    with _as_serve_ocsp(settings):
        tag = os.urandom(5).hex()
        turn: list[Callable[[], None]] = []
        assert obs.batch_access_lines(turn.append)
        for i in range(obs.ACCESS_BATCH_MAX):
            _call(f"full-{tag}-{i}")
        assert len([e for e in _lines(settings) if e.get("request_id", "").startswith(f"full-{tag}-")]) == \
            obs.ACCESS_BATCH_MAX                              # memory stays bounded within a long turn


def test_no_batching_past_another_handler(settings) -> None:  # type: ignore[no-untyped-def]
    """An operator's handler (or filter) on the way: every line goes through logging."""
    with _as_serve_ocsp(settings):
        extra = logging.NullHandler()
        for target in (logging.getLogger(), obs.access_log):
            target.addHandler(extra)
            try:
                assert not obs.batch_access_lines(lambda f: None) and obs._batch is None
            finally:
                target.removeHandler(extra)

        def keep(record: logging.LogRecord) -> bool:
            return True

        obs.access_log.addFilter(keep)
        try:
            assert not obs.batch_access_lines(lambda f: None)
        finally:
            obs.access_log.removeFilter(keep)


class _Recorder:
    """A stream that keeps each flushed write apart (what a pipe's reader would see)."""

    def __init__(self) -> None:
        self.pending = ""
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.pending += text
        return len(text)

    def flush(self) -> None:
        if self.pending:
            self.writes.append(self.pending)
            self.pending = ""


def test_writes_stay_within_pipe_buf() -> None:
    """Several workers share stderr (a pipe under systemd or a container): each write is at
    most PIPE_BUF octets of whole lines, so no two workers' lines interleave mid-line; a
    line with other than ASCII is written alone."""
    stream = _Recorder()
    batch = obs._AccessBatch(logging.StreamHandler(stream), lambda f: None)  # type: ignore[arg-type]
    fields = [{"request_id": f"pipe-{i:04d}", "path": "/ocsp" if i != 7 else "/证书", "status": 200}
              for i in range(60)]
    for f in fields:
        batch.add(f)
    batch.flush()
    assert len(stream.writes) > 2 and not stream.pending
    assert all(len(w.encode()) <= 4096 and w.endswith("\n") for w in stream.writes)
    lines = [json.loads(line) for w in stream.writes for line in w.splitlines()]
    assert [e["request_id"] for e in lines] == [f["request_id"] for f in fields]
    assert [w for w in stream.writes if "证书" in w] == [w for w in stream.writes if w.count("\n") == 1 and "证书" in w]
