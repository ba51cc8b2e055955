"""Wrong passwords counted per name, so guessing one person's password is slow (I/O: reads
the clock).

At most `limit` failures per name within `window_s`; at most `max_names` names are tracked
(the least recently failed go first), so trying many names cannot fill the memory.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable

MAX_LOGIN_FAILURES = 5
LOGIN_WINDOW_S = 300.0
MAX_NAMES = 10_000


class LoginThrottle:
    def __init__(
        self,
        *,
        limit: int = MAX_LOGIN_FAILURES,
        window_s: float = LOGIN_WINDOW_S,
        max_names: int = MAX_NAMES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limit = limit
        self._window_s = window_s
        self._max_names = max_names
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._failures)

    def throttled(self, name: str) -> bool:
        """Whether `name` failed `limit` times within the window (its older failures drop)."""
        recent = self._failures.get(name)
        if recent is None:
            return False
        while recent and recent[0] < self._clock() - self._window_s:
            recent.popleft()
        if not recent:
            del self._failures[name]
            return False
        return len(recent) >= self._limit

    def failed(self, name: str) -> None:
        recent = self._failures.setdefault(name, deque(maxlen=self._limit))
        recent.append(self._clock())
        self._failures.move_to_end(name)
        while len(self._failures) > self._max_names:
            self._failures.popitem(last=False)
