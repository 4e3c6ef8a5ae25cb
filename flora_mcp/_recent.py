"""A size-bounded mapping for long-running servers."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any


class Recent(OrderedDict):
    """A dict that keeps only its `limit` most recent entries: a hosted server runs for months."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.limit:
            self.popitem(last=False)
