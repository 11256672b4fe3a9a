"""The publisher's on-disk spool (SQLite), so events waiting for Redis survive a restart."""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import MaskstreamError
from pipeline.events import SCHEMA_VERSION

log = logging.getLogger(__name__)
_VERSION = str(SCHEMA_VERSION)


@dataclass(slots=True)
class SpooledEvent:
    seq: int  # publish order across all sources; delivery follows it
    source_id: str
    event_id: str
    type: str
    frame_index: int | None
    capture_time: float | None
    data: str  # the event as JSON


class DiskSpool:
    """The spool mirrored in an SQLite file, so events waiting for Redis survive a restart of maskstream.

    Rows are keyed by the publisher's sequence number, so the waiting events always form one contiguous range
    and removing delivered or dropped ones is one range DELETE. synchronous=OFF with WAL: a write costs a
    page-cache copy, not an fsync (the caller must not wait on the disk); a power cut may lose the last
    seconds, a process crash loses nothing.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=OFF")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS spool (seq INTEGER PRIMARY KEY, source_id TEXT, event_id TEXT,"
                " type TEXT, frame_index INTEGER, capture_time REAL, data TEXT)"
            )
        except sqlite3.Error as exc:
            raise MaskstreamError(f"cannot use event spool file {path}: {exc}") from None

    def load(self) -> list[SpooledEvent]:
        rows = self._db.execute(
            "SELECT seq, source_id, event_id, type, frame_index, capture_time, data FROM spool ORDER BY seq"
        )
        return [SpooledEvent(*row) for row in rows]

    def append(self, items: list[SpooledEvent]) -> None:
        self._db.executemany(
            "INSERT INTO spool VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(i.seq, i.source_id, i.event_id, i.type, i.frame_index, i.capture_time, i.data) for i in items],
        )

    def remove(self, first_seq: int, last_seq: int) -> None:
        self._db.execute("DELETE FROM spool WHERE seq BETWEEN ? AND ?", (first_seq, last_seq))

    def close(self) -> None:
        self._db.close()
