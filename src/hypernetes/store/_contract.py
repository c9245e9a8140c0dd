"""The store contract: data types, errors and the abstract `Store`."""

from __future__ import annotations

import abc
import asyncio
import dataclasses
import enum
from collections.abc import AsyncIterator, Sequence


class StoreError(Exception):
    """Base of the store's errors."""


class Compacted(StoreError):
    """The requested revision is older than the compacted revision."""

    def __init__(self, compact_revision: int) -> None:
        super().__init__(f"required revision has been compacted (compacted at {compact_revision})")
        self.compact_revision = compact_revision


class FutureRevision(StoreError):
    """The requested revision is newer than the store's current revision."""


class KeyExists(StoreError):
    """A create found the key already present."""


class Conflict(StoreError):
    """A compare-and-swap found another revision than expected."""

    def __init__(self, key: str, current: KeyValue | None) -> None:
        super().__init__(f"revision mismatch on {key}")
        self.key = key
        self.current = current


class WatchClosed(StoreError):
    """The watch was closed by the store (shutdown, or a consumer too slow)."""


@dataclasses.dataclass(frozen=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    """Number of writes since the key was (re)created; 1 after creation."""


class EventType(enum.Enum):
    PUT = "PUT"
    DELETE = "DELETE"


@dataclasses.dataclass(frozen=True)
class Event:
    """One change. For DELETE, `kv` holds the last value and the delete's revision."""

    type: EventType
    kv: KeyValue
    prev: KeyValue | None


@dataclasses.dataclass(frozen=True)
class RangeResult:
    kvs: list[KeyValue]
    more: bool
    """True if `limit` cut the result short."""
    revision: int
    """The revision the read was served at."""


@dataclasses.dataclass(frozen=True)
class Compare:
    """Transaction guard: `key`'s mod revision equals `mod_revision` (0: key absent)."""

    key: str
    mod_revision: int


@dataclasses.dataclass(frozen=True)
class Put:
    key: str
    value: bytes


@dataclasses.dataclass(frozen=True)
class Delete:
    key: str


@dataclasses.dataclass(frozen=True)
class TxnResult:
    succeeded: bool
    revision: int
    """The new revision if succeeded, else the current one."""


def prefix_end(prefix: str) -> str:
    """The smallest key greater than every key starting with `prefix`."""
    if not prefix:
        raise ValueError("empty prefix")
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class Watch(abc.ABC):
    """An ordered stream of events; iterate it, close it when done."""

    @abc.abstractmethod
    def __aiter__(self) -> AsyncIterator[Event]:
        """Iterate events. Cancelling a pending `__anext__` loses no event."""

    @abc.abstractmethod
    def close(self) -> None: ...


class Store(abc.ABC):
    """An etcd-v3-like revisioned key-value store."""

    @abc.abstractmethod
    async def txn(self, compares: Sequence[Compare], ops: Sequence[Put | Delete]) -> TxnResult:
        """If every compare holds, apply all ops atomically at one new revision."""

    @abc.abstractmethod
    async def range(
        self, prefix: str, *, start: str = "", limit: int = 0, revision: int = 0
    ) -> RangeResult:
        """Keys under `prefix`, from `start` (inclusive) on, in key order.

        `revision=0` reads the latest state; `limit=0` means no limit.
        """

    @abc.abstractmethod
    async def get(self, key: str, *, revision: int = 0) -> KeyValue | None:
        """One key at `revision` (0: latest), or None."""

    @abc.abstractmethod
    def watch(self, prefix: str, start_revision: int) -> Watch:
        """Events under `prefix` with revision >= `start_revision`.

        Raises `Compacted` if that history is gone, `FutureRevision` if it is
        beyond the current revision plus one.
        """

    @abc.abstractmethod
    async def compact(self, revision: int) -> None:
        """Forget history before `revision`."""

    @abc.abstractmethod
    async def current_revision(self) -> int: ...

    @abc.abstractmethod
    async def compacted_revision(self) -> int: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    # Conveniences built on `txn`; backends need not override them.

    async def create(self, key: str, value: bytes) -> int:
        """Create `key`; raise KeyExists if present. Returns the new revision."""
        result = await self.txn([Compare(key, 0)], [Put(key, value)])
        if not result.succeeded:
            raise KeyExists(key)
        return result.revision

    async def update(self, key: str, value: bytes, mod_revision: int) -> int:
        """Replace `key` if its mod revision is `mod_revision`; else raise Conflict."""
        result = await self.txn([Compare(key, mod_revision)], [Put(key, value)])
        if not result.succeeded:
            raise Conflict(key, await self.get(key))
        return result.revision

    async def delete(self, key: str, mod_revision: int) -> int:
        """Delete `key` if its mod revision is `mod_revision`; else raise Conflict."""
        if mod_revision == 0:
            raise ValueError("delete needs the revision of an existing key")
        result = await self.txn([Compare(key, mod_revision)], [Delete(key)])
        if not result.succeeded:
            raise Conflict(key, await self.get(key))
        return result.revision


class QueueWatch(Watch):
    """A watch fed through a bounded queue by the store that created it."""

    def __init__(self, prefix: str, maxsize: int, on_close: object = None) -> None:
        self.prefix = prefix
        self.end = prefix_end(prefix)
        # One slot beyond `maxsize` is kept for the item that ends the stream.
        self._queue: asyncio.Queue[Event | StoreError | None] = asyncio.Queue(maxsize + 1)
        self._maxsize = maxsize
        self._closed = False
        self._on_close = on_close

    def covers(self, key: str) -> bool:
        return self.prefix <= key < self.end

    def offer(self, item: Event | StoreError) -> bool:
        """Queue an event; False (and the watch ends) if the consumer is too slow."""
        if self._closed:
            return False
        if self._queue.qsize() >= self._maxsize:
            self._fail(WatchClosed("watch consumer too slow"))
            return False
        self._queue.put_nowait(item)
        return True

    def _fail(self, error: StoreError) -> None:
        self._queue.put_nowait(error)
        self._closed = True

    def terminate(self, error: StoreError) -> None:
        if not self._closed:
            self._fail(error)

    def __aiter__(self) -> QueueWatch:
        return self

    async def __anext__(self) -> Event:
        # A plain awaitable (not an async generator), so that a caller may
        # cancel a wait (for a timeout) without ending the watch.
        item = await self._queue.get()
        if item is None:
            self._queue.put_nowait(None)  # stay ended for later calls
            raise StopAsyncIteration
        if isinstance(item, StoreError):
            self._queue.put_nowait(item)
            raise item
        return item

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(None)
        if callable(self._on_close):
            self._on_close(self)
