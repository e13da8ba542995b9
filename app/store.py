"""Durable chat history in SQLite: schema, batched appends, history queries, pruning.

Strategy: one `sqlite3` connection owned by one dedicated thread (a single-worker
executor), so the event loop never blocks on disk and SQLite needs no locking of ours.
`append()` writes a whole batch in one transaction and one commit; the caller (the Hub)
hands it every message that arrived while the previous commit was running, so one fsync
serves many messages. WAL lets readers (history queries) proceed beside the writer.

Ids are global (one sequence for all rooms), which makes them strictly increasing per room;
`rooms.pruned_id` remembers the newest id removed by the per-room cap, so a reconnect with
`since` can tell that something it missed is gone (`truncated`).

This module imports sqlite3, msgspec and app.messages; never `server/`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
from collections.abc import Iterable
from typing import Any, Final

import msgspec

from app.messages import StoredMessage

__all__ = ["Store", "SCHEMA_VERSION"]

SCHEMA_VERSION: Final = 1

# Each entry migrates from version i to i + 1 (PRAGMA user_version is the version).
_MIGRATIONS: Final[tuple[str, ...]] = (
    """
    CREATE TABLE IF NOT EXISTS messages (
        id   INTEGER PRIMARY KEY,
        room TEXT NOT NULL,
        nick TEXT NOT NULL,
        text TEXT NOT NULL,
        ts   TEXT NOT NULL,
        ref  TEXT            -- JSON of the client's ref (keeps str vs int), or NULL
    );
    CREATE INDEX IF NOT EXISTS messages_room_id ON messages (room, id);
    CREATE TABLE IF NOT EXISTS rooms (
        room      TEXT PRIMARY KEY,
        pruned_id INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    """,
)

_COLUMNS: Final = "id, room, nick, text, ts, ref"


def _row(row: tuple[Any, ...]) -> StoredMessage:
    ref = msgspec.json.decode(row[5]) if row[5] is not None else None
    return StoredMessage(row[0], row[1], row[2], row[3], row[4], ref)


class Store:
    """SQLite history. Every public coroutine runs its SQL on the store's own thread.

    Args:
        path: database file, or ":memory:".
        history_limit: messages kept per room; older ones are deleted after each commit.
    """

    def __init__(self, path: str, history_limit: int) -> None:
        self.path = path
        self.history_limit = history_limit
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="chat-db")
        self._db: sqlite3.Connection | None = None

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # -- lifecycle --------------------------------------------------------------------

    async def open(self) -> int:
        """Open (creating or migrating the schema); returns the last id ever assigned."""
        return int(await self._run(self._open))

    def _open(self) -> int:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
        self._db = db
        db.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk before the message is acknowledged, even on power loss.
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA busy_timeout=5000")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"{self.path}: schema version {version} is newer than this app's {SCHEMA_VERSION}"
            )
        for target in range(version, SCHEMA_VERSION):
            db.execute("BEGIN IMMEDIATE")
            try:
                for statement in _MIGRATIONS[target].split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version={target + 1}")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        last = db.execute("SELECT max(id) FROM messages").fetchone()[0] or 0
        pruned = db.execute("SELECT max(pruned_id) FROM rooms").fetchone()[0] or 0
        return max(int(last), int(pruned))

    async def close(self) -> None:
        if self._db is not None:
            await self._run(self._close)
        self._executor.shutdown(wait=True)

    def _close(self) -> None:
        assert self._db is not None
        self._db.close()
        self._db = None

    # -- writes -----------------------------------------------------------------------

    async def append(self, messages: list[StoredMessage]) -> None:
        """Insert `messages` (ids already assigned) and prune, in one transaction, one commit.

        Raises:
            sqlite3.Error: nothing of the batch was stored.
        """
        await self._run(self._append, messages)

    def _append(self, messages: list[StoredMessage]) -> None:
        db = self._db
        assert db is not None
        db.execute("BEGIN")
        try:
            db.executemany(
                "INSERT INTO messages (id, room, nick, text, ts, ref) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (m.id, m.room, m.nick, m.text, m.ts,
                     None if m.ref is None else msgspec.json.encode(m.ref).decode())
                    for m in messages
                ],
            )
            for room in {m.room for m in messages}:
                self._prune(db, room)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _prune(self, db: sqlite3.Connection, room: str) -> None:
        # The oldest id to keep: the history_limit-th newest of the room (index seek).
        row = db.execute(
            "SELECT id FROM messages WHERE room = ? ORDER BY id DESC LIMIT 1 OFFSET ?",
            (room, self.history_limit - 1),
        ).fetchone()
        if row is None:
            return
        cursor = db.execute("DELETE FROM messages WHERE room = ? AND id < ?", (room, row[0]))
        if cursor.rowcount:
            db.execute(
                "INSERT INTO rooms (room, pruned_id) VALUES (?, ?) ON CONFLICT (room) "
                "DO UPDATE SET pruned_id = max(pruned_id, excluded.pruned_id)",
                (room, row[0] - 1),
            )

    # -- reads ------------------------------------------------------------------------

    async def latest(self, room: str, limit: int) -> list[StoredMessage]:
        """The newest `limit` messages of `room`, oldest first."""
        result: list[StoredMessage] = await self._run(self._latest, room, limit)
        return result

    def _latest(self, room: str, limit: int) -> list[StoredMessage]:
        return self._select(
            "WHERE room = ? ORDER BY id DESC LIMIT ?", (room, limit))

    async def since(self, room: str, since: int, limit: int) -> tuple[list[StoredMessage], bool]:
        """Messages of `room` with id > `since`, oldest first, at most the newest `limit`.

        Returns:
            (messages, truncated): truncated is true when more than `limit` were newer than
            `since`, or when the cap pruned messages newer than `since`.
        """
        result: tuple[list[StoredMessage], bool] = await self._run(
            self._since, room, since, limit)
        return result

    def _since(self, room: str, since: int, limit: int) -> tuple[list[StoredMessage], bool]:
        assert self._db is not None
        messages = self._select(
            "WHERE room = ? AND id > ? ORDER BY id DESC LIMIT ?", (room, since, limit + 1))
        truncated = len(messages) > limit
        if truncated:
            del messages[0]
        row = self._db.execute("SELECT pruned_id FROM rooms WHERE room = ?", (room,)).fetchone()
        return messages, truncated or (row is not None and row[0] > since)

    async def before(self, room: str, before: int | None, limit: int) -> list[StoredMessage]:
        """The newest `limit` messages of `room` with id < `before` (all when None)."""
        result: list[StoredMessage] = await self._run(self._before, room, before, limit)
        return result

    def _before(self, room: str, before: int | None, limit: int) -> list[StoredMessage]:
        if before is None:
            return self._latest(room, limit)
        return self._select(
            "WHERE room = ? AND id < ? ORDER BY id DESC LIMIT ?", (room, before, limit))

    async def rooms(self, after: str | None, limit: int) -> list[str]:
        """Names of the rooms that have history, sorted, the first `limit` after `after`."""
        names: list[str] = await self._run(self._rooms, after or "", limit)
        return names

    def _rooms(self, after: str, limit: int) -> list[str]:
        assert self._db is not None
        # DISTINCT over the (room, id) index: a skip through the index, no table scan.
        rows = self._db.execute(
            "SELECT DISTINCT room FROM messages WHERE room > ? ORDER BY room LIMIT ?",
            (after, limit)).fetchall()
        return [row[0] for row in rows]

    def _select(self, where: str, args: Iterable[Any]) -> list[StoredMessage]:
        """Rows newest-first from SQL, returned oldest first (histories are oldest first)."""
        assert self._db is not None
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM messages {where}", tuple(args))
        messages = [_row(r) for r in rows]
        messages.reverse()
        return messages
