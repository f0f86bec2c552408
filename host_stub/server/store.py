"""The queue and the history in SQLite, so that both survive a restart, a crash or a ``kill -9``.

Items have ComfyUI's queue item shape, ``[number, prompt_id, prompt, extra_data,
outputs_to_execute]``; they run in ComfyUI's heap order (lowest ``number`` first, then prompt id).
Every change is committed before the caller acknowledges it (WAL journal, ``synchronous=FULL``),
so what a client was told was queued is on disk. An item being run is marked ``running`` and its
starts are counted; on the next start, :meth:`QueueStore.recover` either queues it again or records
it as failed, and an item that was running at :data:`MAX_STARTS` ends of the server is never run
again (a prompt that crashes the process must not crash it forever). One process at a time
serves from a database (a ``.lock`` file beside it).

A write that SQLite refuses (a full disk, a read-only file system) raises :class:`StoreUnwritable`;
the store remembers the problem (:meth:`QueueStore.health`) until a write succeeds again.

History entries have ComfyUI's shape (``prompt``, ``outputs``, ``status``, ``meta``) and are
listed in the order they finished; the oldest are dropped beyond ``max_history``.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("host_stub.server")

SCHEMA = """
CREATE TABLE IF NOT EXISTS queue (
    prompt_id TEXT PRIMARY KEY,
    number REAL NOT NULL,
    item TEXT NOT NULL,
    client_id TEXT,
    state TEXT NOT NULL DEFAULT 'pending',
    queued_at REAL NOT NULL,
    starts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS queue_order ON queue (state, number, prompt_id);
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    prompt_id TEXT NOT NULL UNIQUE,
    entry TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

MAXIMUM_HISTORY_SIZE = 10000  # ComfyUI's limit
MAX_STARTS = 3  # a prompt running at this many ends of the server is marked failed, not run again


class PromptIdInUse(ValueError):
    """A prompt with this id is already queued or running."""


class QueueInUse(RuntimeError):
    """Another process serves from this queue database."""


class StoreUnwritable(RuntimeError):
    """SQLite cannot write the database (full disk, read-only file system, I/O error)."""


def _lock(path: Path) -> Any:
    """An exclusive lock next to the database, released by the OS however the process ends."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock
        return None
    handle = open(path.with_name(path.name + ".lock"), "w")  # noqa: SIM115 - held for the store's life
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise QueueInUse(f"another process is serving from {path}") from None
    return handle


@dataclass
class QueueItem:
    number: float
    prompt_id: str
    prompt: dict[str, Any]
    extra_data: dict[str, Any] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)

    @property
    def client_id(self) -> str | None:
        return self.extra_data.get("client_id")

    def as_list(self) -> list[Any]:
        """The item as ComfyUI serves it in ``/queue`` and history entries."""
        return [self.number, self.prompt_id, self.prompt, self.extra_data, self.outputs]

    @classmethod
    def from_json(cls, text: str) -> QueueItem:
        number, prompt_id, prompt, extra_data, outputs = json.loads(text)
        return cls(number, prompt_id, prompt, extra_data, outputs)


class QueueStore:
    """One SQLite file; one connection shared by the server's threads under a lock."""

    def __init__(self, path: str | Path, max_history: int = MAXIMUM_HISTORY_SIZE):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_history = max_history
        self._file_lock = _lock(self.path)
        self._lock = threading.RLock()
        self.problem: str | None = None  # why the last write failed, until one succeeds
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")
        with self._tx():
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(queue)")}
            if "starts" not in columns:  # a database from before starts were counted
                self._db.execute("ALTER TABLE queue ADD COLUMN starts INTEGER NOT NULL DEFAULT 0")

    def health(self) -> dict[str, Any]:
        """For ``/system_stats``: the database, whether it can be written, and why not."""
        return {"path": str(self.path), "writable": self.problem is None, "error": self.problem}

    def _written(self, error: BaseException | None) -> None:
        """Note how a write ended: a database error becomes the store's problem (logged once)."""
        if error is None:
            if self.problem is not None:
                log.warning("the queue database %s can be written again", self.path)
            self.problem = None
            return
        if self.problem is None:
            log.error("the queue database %s cannot be written: %s", self.path, error)
        self.problem = str(error)

    def close(self) -> None:
        with self._lock:
            self._db.close()
            if self._file_lock is not None:
                self._file_lock.close()

    def _tx(self) -> _Transaction:
        return _Transaction(self._db, self._lock, self._written)

    # --- the queue --------------------------------------------------------------------------------

    def add(
        self,
        prompt_id: str,
        prompt: dict[str, Any],
        extra_data: dict[str, Any],
        outputs: list[str],
        number: float | None = None,
        front: bool = False,
    ) -> QueueItem:
        """Queue a prompt; without ``number`` it gets ComfyUI's counter (negated with ``front``)."""
        with self._tx() as db:
            if db.execute("SELECT 1 FROM queue WHERE prompt_id = ?", (prompt_id,)).fetchone():
                raise PromptIdInUse(prompt_id)
            if number is None:
                row = db.execute("SELECT value FROM counters WHERE name = 'number'").fetchone()
                counter = row[0] if row else 0
                db.execute("INSERT OR REPLACE INTO counters VALUES ('number', ?)", (counter + 1,))
                number = -counter if front else counter
            item = QueueItem(number, prompt_id, prompt, extra_data, outputs)
            db.execute(
                "INSERT INTO queue (prompt_id, number, item, client_id, state, queued_at)"
                " VALUES (?, ?, ?, ?, 'pending', ?)",
                (prompt_id, float(number), json.dumps(item.as_list()), item.client_id, time.time()),
            )
        return item

    def claim(self) -> QueueItem | None:
        """Mark the first pending item running and return it (None when nothing is pending)."""
        with self._tx() as db:
            row = db.execute(
                "SELECT prompt_id, item FROM queue WHERE state = 'pending' ORDER BY number, prompt_id LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            started = "UPDATE queue SET state = 'running', starts = starts + 1 WHERE prompt_id = ?"
            db.execute(started, (row[0],))
        return QueueItem.from_json(row[1])

    def uncount(self, prompt_id: str) -> None:
        """A start that the server's own stop cut short is not held against the prompt."""
        with self._tx() as db:
            db.execute("UPDATE queue SET starts = MAX(starts - 1, 0) WHERE prompt_id = ?", (prompt_id,))

    def finish(self, prompt_id: str, entry: dict[str, Any]) -> None:
        """Take a running item off the queue and write its history entry, in one transaction."""
        with self._tx() as db:
            db.execute("DELETE FROM queue WHERE prompt_id = ?", (prompt_id,))
            db.execute("DELETE FROM history WHERE prompt_id = ?", (prompt_id,))
            _insert_history(db, prompt_id, entry)
            excess = db.execute("SELECT COUNT(*) FROM history").fetchone()[0] - self.max_history
            if excess > 0:
                oldest = "SELECT seq FROM history ORDER BY seq LIMIT ?"
                db.execute(f"DELETE FROM history WHERE seq IN ({oldest})", (excess,))

    def _items(self, state: str) -> list[QueueItem]:
        with self._lock:
            rows = self._db.execute(
                "SELECT item FROM queue WHERE state = ? ORDER BY number, prompt_id", (state,)
            ).fetchall()
        return [QueueItem.from_json(row[0]) for row in rows]

    def pending(self) -> list[QueueItem]:
        return self._items("pending")

    def running(self) -> list[QueueItem]:
        return self._items("running")

    def remaining(self) -> int:
        """ComfyUI's ``queue_remaining``: pending plus running."""
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM queue").fetchone()[0]

    def state_of(self, prompt_id: str) -> str | None:
        """``"pending"``, ``"running"`` or None."""
        with self._lock:
            row = self._db.execute("SELECT state FROM queue WHERE prompt_id = ?", (prompt_id,)).fetchone()
        return None if row is None else row[0]

    def delete_pending(self, prompt_id: str) -> str | None:
        """Remove a pending item. Returns the item's state before (``"running"`` items stay)."""
        with self._tx() as db:
            row = db.execute("SELECT state FROM queue WHERE prompt_id = ?", (prompt_id,)).fetchone()
            if row is not None and row[0] == "pending":
                db.execute("DELETE FROM queue WHERE prompt_id = ?", (prompt_id,))
        return None if row is None else row[0]

    def clear_pending(self) -> int:
        with self._tx() as db:
            return db.execute("DELETE FROM queue WHERE state = 'pending'").rowcount

    def recover(self, rerun: bool, entry_for: Callable[[QueueItem], dict[str, Any]],
                gave_up: Callable[[QueueItem, int], dict[str, Any]] | None = None) -> list[str]:
        """After a restart: items left ``running`` run again (``rerun``) or get the history entry
        ``entry_for(item)`` gives; one started :data:`MAX_STARTS` times gets ``gave_up(item,
        starts)`` (``entry_for(item)`` without it) even with ``rerun``. Returns their prompt ids."""
        with self._tx() as db:
            rows = db.execute("SELECT prompt_id, item, starts FROM queue WHERE state = 'running'").fetchall()
            for prompt_id, text, starts in rows:
                if rerun and starts < MAX_STARTS:
                    db.execute("UPDATE queue SET state = 'pending' WHERE prompt_id = ?", (prompt_id,))
                    continue
                item = QueueItem.from_json(text)
                over = gave_up is not None and starts >= MAX_STARTS
                entry = gave_up(item, starts) if over else entry_for(item)
                db.execute("DELETE FROM queue WHERE prompt_id = ?", (prompt_id,))
                db.execute("DELETE FROM history WHERE prompt_id = ?", (prompt_id,))
                _insert_history(db, prompt_id, entry)
        return [row[0] for row in rows]

    # --- the history ------------------------------------------------------------------------------

    def history(self, max_items: int | None = None, offset: int = -1) -> dict[str, Any]:
        """``GET /history``: oldest first; a negative offset with ``max_items`` means the newest ones."""
        with self._lock:
            if offset < 0 and max_items is not None:
                total = self._db.execute("SELECT COUNT(*) FROM history").fetchone()[0]
                offset = total - max_items
            rows = self._db.execute(
                "SELECT prompt_id, entry FROM history ORDER BY seq LIMIT ? OFFSET ?",
                # ComfyUI takes an item before it checks the count: max_items 0 still gives one.
                (-1 if max_items is None else max(max_items, 1), max(offset, 0)),
            ).fetchall()
        return {prompt_id: json.loads(entry) for prompt_id, entry in rows}

    def history_item(self, prompt_id: str) -> dict[str, Any]:
        """``GET /history/<prompt_id>``: ``{prompt_id: entry}``, or ``{}`` as ComfyUI answers."""
        with self._lock:
            row = self._db.execute("SELECT entry FROM history WHERE prompt_id = ?", (prompt_id,)).fetchone()
        return {} if row is None else {prompt_id: json.loads(row[0])}

    def delete_history(self, prompt_ids: list[str]) -> None:
        with self._tx() as db:
            db.executemany("DELETE FROM history WHERE prompt_id = ?", [(p,) for p in prompt_ids])

    def clear_history(self) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM history")


def _insert_history(db: sqlite3.Connection, prompt_id: str, entry: dict[str, Any]) -> None:
    text = json.dumps(entry, default=str)
    db.execute("INSERT INTO history (prompt_id, entry) VALUES (?, ?)", (prompt_id, text))


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error) under the store's lock. A
    database error (SQLite's ``OperationalError``: full disk, read-only, I/O) is reported to
    ``written`` and raised as :class:`StoreUnwritable`; the connection is left with no open
    transaction, so the next write can try again."""

    def __init__(self, db: sqlite3.Connection, lock: threading.RLock,
                 written: Callable[[BaseException | None], None]):
        self.db = db
        self.lock = lock
        self.written = written

    def __enter__(self) -> sqlite3.Connection:
        self.lock.acquire()
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            self.lock.release()
            self.written(exc)
            raise StoreUnwritable(str(exc)) from exc
        except BaseException:
            self.lock.release()
            raise
        return self.db

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None:
                exc = self._commit()
        finally:
            try:
                if self.db.in_transaction:  # SQLite may have rolled back already (a full disk does)
                    self.db.execute("ROLLBACK")
            finally:
                self.lock.release()
        if isinstance(exc, sqlite3.OperationalError):
            self.written(exc)
            raise StoreUnwritable(str(exc)) from exc

    def _commit(self) -> sqlite3.OperationalError | None:
        try:
            self.db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            return exc
        self.written(None)
        return None
