"""The revisioned key-value store the API server keeps its objects in.

The contract follows etcd v3: one global revision that increases by one on
every successful write transaction; each key carries the revision that created
it and the one that last changed it; reads may be made at a past revision;
watches replay history from a revision and then follow live changes with no
gap and no duplicate; compaction forgets history older than a revision, after
which reads and watches from before it fail with `Compacted`.

The API layer is written against `Store` only. Backends:
`SQLiteStore` (embedded, one file, the default) and, later, an etcd one.
"""

from hypernetes.store._contract import (
    Compacted,
    Compare,
    Conflict,
    Delete,
    Event,
    EventType,
    FutureRevision,
    KeyExists,
    KeyValue,
    Put,
    RangeResult,
    Store,
    StoreError,
    TxnResult,
    Watch,
    WatchClosed,
    prefix_end,
)
from hypernetes.store.sqlite import SQLiteStore

__all__ = [
    "Compacted",
    "Compare",
    "Conflict",
    "Delete",
    "Event",
    "EventType",
    "FutureRevision",
    "KeyExists",
    "KeyValue",
    "Put",
    "RangeResult",
    "SQLiteStore",
    "Store",
    "StoreError",
    "TxnResult",
    "Watch",
    "WatchClosed",
    "prefix_end",
]
