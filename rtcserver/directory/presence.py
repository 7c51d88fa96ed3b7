"""Presence as state: the directory, what each subscriber has been told, and the net
change since.

Sans-I/O, like `registry.py` and `calls.py`: no sockets, no awaits, no clock. The shell
(`phone.py`) reports changes (`set`, `remove`), decides when to `seal` them into a new
version (at most once per its interval: this is what bounds presence work, whatever the
login rate), wakes the subscribers `seal` returns, and each subscriber's writer calls
`take` when its connection is ready to write. So a subscriber gets one frame per write,
holding every change since what it was told (a join and a leave in between cancel
out), and one that fell far behind gets a fresh snapshot instead of a backlog.

Frames (docs/PROTOCOL.md, "Directory"):
- `{"type":"USERS","users":[{"name":N,"status":S},…]}`: the whole directory (replace
  what you know). It lists the subscriber too; clients skip their own name.
- `{"type":"DIRECTORY","changes":[{"name":N,"status":S},…]}`: the net change; S is
  `available`, `in-call` or `offline` (left). A name not known yet is a join.

Frames are encoded once per version and shared: a storm of N logins costs each version
one snapshot and a few deltas (one per distinct version subscribers were told), not one
frame per event per subscriber.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Final, final

import orjson

OFFLINE: Final = "offline"
# Deltas are kept while the changes they hold number at most this many, or the
# directory's size if larger: older subscribers get a snapshot, which costs no more.
MIN_HISTORY: Final = 64


@final
class Subscriber:
    """One directory subscriber: the version it was told (None: nothing yet)."""

    __slots__ = ("directory", "told", "wake")

    def __init__(self, directory: Directory, wake: Callable[[], None]) -> None:
        self.directory = directory
        self.told: int | None = None
        self.wake = wake  # the shell's: have this subscriber's writer write

    def take(self) -> list[bytes]:
        """The frame to write now, if there is news: see `Directory.take`."""
        frame = self.directory.take(self)
        return [] if frame is None else [frame]


@final
class Directory:
    """Logged-in users and their status, versioned; the subscribers and their versions."""

    def __init__(self) -> None:
        self.version = 0
        self._status: dict[str, str] = {}  # as of `version`
        self._entries: dict[str, bytes] = {}  # name -> its encoded entry, as of `version`
        self._open: dict[str, str] = {}  # changes since `version` (OFFLINE: removed)
        # (version, {name: status after}, {name: status before, OFFLINE if absent})
        self._history: collections.deque[tuple[int, dict[str, str], dict[str, str]]] = (
            collections.deque()
        )
        self._history_changes = 0
        self._subscribers: set[Subscriber] = set()
        self._snapshot: bytes | None = None  # of `version`, built when first asked
        self._deltas: dict[int, bytes | None] = {}  # told version -> frame, for `version`

    # ------------------------------------------------------------ queries

    def __len__(self) -> int:
        return len(self._status)

    def status(self, name: str) -> str:
        """The status as of the last version."""
        return self._status.get(name, OFFLINE)

    def users(self) -> dict[str, str]:
        return dict(self._status)

    @property
    def pending(self) -> bool:
        """Changes wait to be sealed."""
        return bool(self._open)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    # ------------------------------------------------------------ changes

    def set(self, name: str, status: str) -> None:
        """`name` is logged in (a join if it was not) with `status`."""
        self._open[name] = status

    def remove(self, name: str) -> None:
        self._open[name] = OFFLINE

    def replace(self, users: dict[str, str]) -> None:
        """The whole directory is now `users` (a cluster resync): the difference is
        what changes."""
        for name in self._status:
            if name not in users:
                self._open[name] = OFFLINE
        self._open.update(users)

    def seal(self) -> list[Subscriber]:
        """Make the open changes a new version. Returns the subscribers with news to
        write (to be woken), which is every one not told the latest version."""
        changes = {n: s for n, s in self._open.items() if s != self._status.get(n, OFFLINE)}
        self._open = {}
        if changes:
            before = {n: self._status.get(n, OFFLINE) for n in changes}
            for name, status in changes.items():
                if status == OFFLINE:
                    del self._status[name]
                    del self._entries[name]
                else:
                    self._status[name] = status
                    self._entries[name] = _entry(name, status)
            self.version += 1
            self._history.append((self.version, changes, before))
            self._history_changes += len(changes)
            limit = max(MIN_HISTORY, len(self._status))
            while self._history_changes > limit and len(self._history) > 1:
                _, dropped, _ = self._history.popleft()
                self._history_changes -= len(dropped)
            self._snapshot = None
            self._deltas = {}
        version = self.version
        return [s for s in self._subscribers if s.told != version]

    # ------------------------------------------------------------ subscribers

    def subscribe(self, wake: Callable[[], None] = lambda: None) -> Subscriber:
        """A new subscriber: its first `take` is a snapshot. `wake` is for the shell."""
        subscriber = Subscriber(self, wake)
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    def take(self, subscriber: Subscriber) -> bytes | None:
        """What `subscriber` has not been told, as one frame (None: nothing), and mark
        it told. A snapshot when it was told nothing yet or is older than the history
        kept; otherwise the net change since its version (None when nothing changed
        for it, as when a user joined and left in between)."""
        told, version = subscriber.told, self.version
        if told == version or subscriber not in self._subscribers:
            return None
        subscriber.told = version
        if told is None or not self._history or told < self._history[0][0] - 1:
            return self.snapshot()
        if told not in self._deltas:
            self._deltas[told] = self._delta_since(told)
        return self._deltas[told]

    def snapshot(self) -> bytes:
        if self._snapshot is None:
            entries = b",".join(self._entries.values())
            self._snapshot = b'{"type":"USERS","users":[' + entries + b"]}"
        return self._snapshot

    def _delta_since(self, told: int) -> bytes | None:
        first_before: dict[str, str] = {}
        last_after: dict[str, str] = {}
        for version, changes, before in reversed(self._history):
            if version <= told:
                break
            last_after.update((n, s) for n, s in changes.items() if n not in last_after)
            first_before.update(before)  # walking back: the oldest `before` wins
        entries = [_entry(n, s) for n, s in last_after.items() if s != first_before[n]]
        if not entries:
            return None
        return b'{"type":"DIRECTORY","changes":[' + b",".join(entries) + b"]}"


def _entry(name: str, status: str) -> bytes:
    # Concatenated rather than returned by orjson.dumps, whose result keeps a buffer of
    # several KiB (measured with tracemalloc: 4 KiB per entry, kept for every user).
    return b'{"name":' + orjson.dumps(name) + b',"status":' + orjson.dumps(status) + b"}"
