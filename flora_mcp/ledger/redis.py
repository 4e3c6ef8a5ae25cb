"""The ledger on Redis, for replicas on several hosts (FLORA_STATE_URL=redis://…).

A user's book is one hash; a change is an optimistic transaction (WATCH the hash, decide, MULTI/EXEC,
retry if another process wrote in between), so the same rules as SQLite's hold across replicas.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TypeVar

from .book import RETENTION_SECONDS, Book

T = TypeVar("T")
PREFIX = "flora-mcp:"


class RedisStore:
    def __init__(self, url: str) -> None:
        from redis.asyncio import Redis  # only when a Redis URL is configured

        self.url = url
        self._redis = Redis.from_url(url, decode_responses=True)

    def __repr__(self) -> str:  # the URL may hold a password
        return "RedisStore()"

    async def update(self, user: str, change: Callable[[Book], T]) -> T:
        from redis.exceptions import WatchError

        name = f"{PREFIX}runs:{user}"
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(name)
                    before = await pipe.hgetall(name)
                    book = {k: json.loads(v) for k, v in before.items()}
                    result = change(book)
                    pipe.multi()
                    gone = list(before.keys() - book.keys())
                    if gone:
                        pipe.hdel(name, *gone)
                    changed = {}
                    for key, row in book.items():
                        data = json.dumps(row, separators=(",", ":"), sort_keys=True)
                        if before.get(key) != data:
                            changed[key] = data
                    if changed:
                        pipe.hset(name, mapping=changed)
                    pipe.expire(name, RETENTION_SECONDS)
                    await pipe.execute()
                    return result
                except WatchError:
                    continue  # another process changed this user's book: decide again on fresh data

    async def read(self, user: str) -> Book:
        return {k: json.loads(v) for k, v in (await self._redis.hgetall(f"{PREFIX}runs:{user}")).items()}

    async def put(self, name: str, value: str, ttl: float) -> None:
        await self._redis.set(PREFIX + name, value, px=max(1, int(ttl * 1000)))

    async def get(self, name: str) -> str | None:
        return await self._redis.get(PREFIX + name)

    async def take(self, name: str) -> str | None:
        return await self._redis.getdel(PREFIX + name)

    async def delete(self, name: str) -> None:
        await self._redis.delete(PREFIX + name)

    async def count(self, name: str, window_seconds: float) -> int:
        slot = f"{PREFIX}{name}@{int(time.time() // window_seconds)}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(slot)
            pipe.expire(slot, max(1, int(window_seconds) + 1))
            count, _ = await pipe.execute()
        return int(count)

    async def add_calibration(self, model: str, estimated_usd: float, charged_usd: float) -> None:
        name = f"{PREFIX}calibration:{model}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hincrbyfloat(name, "estimated", estimated_usd)
            pipe.hincrbyfloat(name, "charged", charged_usd)
            pipe.hincrby(name, "n", 1)
            await pipe.execute()

    async def calibration(self, model: str) -> tuple[float, float, int]:
        values = await self._redis.hgetall(f"{PREFIX}calibration:{model}")
        if not values:
            return 0.0, 0.0, 0
        return float(values["estimated"]), float(values["charged"]), int(values["n"])

    async def aclose(self) -> None:
        await self._redis.aclose()
