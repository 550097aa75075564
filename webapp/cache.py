"""A bounded, thread-safe LRU cache of encoded answers (pictures, and what the classifier reads in them).

Dragging a slider back and forth asks for the same pictures again; each one is a pure function of
its inputs and the weights, so the bytes can be kept and served again. The bounds are on entries and
on bytes, so memory stays bounded whatever the clients ask for.
"""

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable


class LruCache:
    """At most `max_entries` values and `max_bytes` bytes; the least recently used go first."""

    def __init__(self, max_entries: int, max_bytes: int):
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._items: OrderedDict[Hashable, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get_or_make(self, key: Hashable, make: Callable[[], bytes]) -> bytes:
        """The cached bytes for `key`, or make() them (outside the lock) and keep them if they fit."""
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
                return value
        value = make()
        if len(value) > self.max_bytes or self.max_entries < 1:
            return value
        with self._lock:
            if key not in self._items:
                self._items[key] = value
                self.nbytes += len(value)
            while len(self._items) > self.max_entries or self.nbytes > self.max_bytes:
                self.nbytes -= len(self._items.popitem(last=False)[1])
        return value
