"""Bounded hand-over between threads with a named policy for a full queue, and counted drops.

Live sources use DROP_OLDEST (the newest frame matters; an old one is useless to a robot in conversation); a
recorded clip is never queued (its face loop reads every frame itself). Never unbounded: an unbounded queue grows
until the process dies.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from enum import Enum
from typing import Generic, TypeVar

T = TypeVar("T")


class FullPolicy(str, Enum):
    DROP_OLDEST = "drop_oldest"


class BoundedQueue(Generic[T]):
    def __init__(self, maxsize: int, policy: FullPolicy = FullPolicy.DROP_OLDEST):
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self.maxsize, self.policy = maxsize, FullPolicy(policy)
        self._items: deque[T] = deque()
        self._cond = threading.Condition()
        self.put_count = 0
        self.dropped = 0

    def put(self, item: T) -> bool:
        """Add an item; never blocks. Returns False when the oldest item had to be dropped (counted)."""
        with self._cond:
            dropped = len(self._items) >= self.maxsize
            if dropped:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self.put_count += 1
            self._cond.notify_all()
            return not dropped

    def get(self, timeout: float | None = None) -> T | None:
        """The oldest item, or None after timeout."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._items, timeout):
                return None
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def drain(self, limit: int) -> list[T]:
        """Up to `limit` items already waiting, without blocking."""
        with self._cond:
            out = [self._items.popleft() for _ in range(min(limit, len(self._items)))]
            self._cond.notify_all()
            return out

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def holds(self, predicate: Callable[[T], bool]) -> bool:
        """Whether an item waiting now satisfies predicate(item)."""
        with self._cond:
            return any(predicate(item) for item in self._items)
