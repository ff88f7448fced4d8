"""Limit counters on Redis (``state.redis_url``): one limit across every instance and worker.

The same windows as ``counters.py`` (60 buckets per window, exact to the bucket) and the same
all-or-nothing admission, done by ONE Lua script per request on Redis's clock: every window and
slot of the request is read, checked and (when all pass) counted in a single atomic step, so 200
requests at once spread over three instances against 50 per minute admit exactly 50. A request
with limits costs one round trip to Redis to be admitted, and one more when it ends if it holds a
concurrency slot or a tokens window; keys without limits cost nothing.

- a window is a Redis hash ``{prefix}x:w:{name}`` (field: bucket number, value: its count); old
  buckets are dropped as they leave the window, and the hash expires a window after its last use.
- a slot (``max_concurrent``) is a hash ``{prefix}x:s:{name}`` (field: instance, value: requests
  it holds). Each instance writes a heartbeat every ``_BEAT_S`` into ``{prefix}x:instances``; when
  a slot is full, the fields of instances silent for ``_STALE_S`` are dropped (an instance killed
  with requests in flight gives their slots back that way), then it is checked again.

While Redis is unreachable a request with limits gets 503 ``state_unavailable`` (``Retry-After:
1``): a limit is never silently skipped. The scripts touch several keys, so this needs one Redis
server (or Sentinel), not Redis Cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from relaystack.gateway.counters import BUCKETS, Ask, Outcome, Window, WindowState, reset_after
from relaystack.state.base import StateUnavailableError

__all__ = ["RedisCounters"]

log = logging.getLogger("relaystack.gateway")

_BEAT_S = 2.0
_STALE_S = 10.0
_INSTANCES = "instances"

# KEYS: nw window hashes, ns slot hashes, the instances hash.
# ARGV: nw, ns, this instance, stale_s, now ('': Redis's clock); per window: bucket_s, limit, 1 if it counts
# requests; per slot: limit.
# Returns {allowed, refused (1-based: windows, then slots; 0), now, then per window: used, oldest bucket (-1)}.
_ADMIT = """
NOW
local nw, ns, me, stale = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local out = {1, 0, tostring(now)}
local refused, currents = 0, {}
for i = 1, nw do
  local a = 5 + (i - 1) * 3
  local size, limit = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local current = math.floor(now / size)
  currents[i] = current
  local used, oldest = 0, -1
  local fields = redis.call('HGETALL', KEYS[i])
  for j = 1, #fields, 2 do
    local b = tonumber(fields[j])
    if b <= current - BUCKETS then
      redis.call('HDEL', KEYS[i], fields[j])
    else
      used = used + tonumber(fields[j + 1])
      if oldest < 0 or b < oldest then oldest = b end
    end
  end
  if refused == 0 and used >= limit then refused = i end
  out[#out + 1] = used
  out[#out + 1] = oldest
end
if refused == 0 then
  for k = 1, ns do
    local key, limit = KEYS[nw + k], tonumber(ARGV[5 + nw * 3 + k])
    local held = redis.call('HGETALL', key)
    local total = 0
    for j = 1, #held, 2 do total = total + tonumber(held[j + 1]) end
    if total >= limit then
      for j = 1, #held, 2 do
        if held[j] ~= me then
          local seen = redis.call('HGET', KEYS[nw + ns + 1], held[j])
          if (not seen) or tonumber(seen) < now - stale then
            redis.call('HDEL', key, held[j])
            total = total - tonumber(held[j + 1])
          end
        end
      end
    end
    if total >= limit then
      refused = nw + k
      break
    end
  end
end
if refused ~= 0 then
  out[1], out[2] = 0, refused
  return out
end
for i = 1, nw do
  local a = 5 + (i - 1) * 3
  if ARGV[a + 3] == '1' then
    redis.call('HINCRBY', KEYS[i], tostring(currents[i]), 1)
    out[2 + 2 * i] = out[2 + 2 * i] + 1
    if out[3 + 2 * i] < 0 then out[3 + 2 * i] = currents[i] end
  end
  redis.call('PEXPIRE', KEYS[i], math.ceil(tonumber(ARGV[a + 1]) * (BUCKETS + 1) * 1000))
end
for k = 1, ns do redis.call('HINCRBY', KEYS[nw + k], me, 1) end
return out
""".replace("BUCKETS", str(BUCKETS))

# KEYS: nt token window hashes, then slot hashes.
# ARGV: nt, this instance, stale_s (unused), now ('': Redis's clock), then per token window: bucket_s, amount.
_SETTLE = """
NOW
local nt, me = tonumber(ARGV[1]), ARGV[2]
for i = 1, nt do
  local size = tonumber(ARGV[3 + 2 * i])
  redis.call('HINCRBY', KEYS[i], tostring(math.floor(now / size)), tonumber(ARGV[4 + 2 * i]))
  redis.call('PEXPIRE', KEYS[i], math.ceil(size * (BUCKETS + 1) * 1000))
end
for k = nt + 1, #KEYS do
  if redis.call('HINCRBY', KEYS[k], me, -1) <= 0 then redis.call('HDEL', KEYS[k], me) end
end
return 1
""".replace("BUCKETS", str(BUCKETS))

# every instance counts on Redis's clock, so they agree on the buckets (tests pass their own as "now")
_NOW = """
local now = tonumber(ARGV[5])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
"""
_ADMIT = _ADMIT.replace("NOW", _NOW.strip())
_SETTLE = _SETTLE.replace("NOW", _NOW.strip().replace("ARGV[5]", "ARGV[4]"))

# KEYS: the instances hash. ARGV: this instance, forget_s, now. Also forgets instances long silent.
_BEAT = """
NOW
redis.call('HSET', KEYS[1], ARGV[1], tostring(now))
if math.random() < 0.05 then
  local all = redis.call('HGETALL', KEYS[1])
  for j = 1, #all, 2 do
    if tonumber(all[j + 1]) < now - tonumber(ARGV[2]) then redis.call('HDEL', KEYS[1], all[j]) end
  end
end
return 1
""".replace("NOW", _NOW.strip().replace("ARGV[5]", "ARGV[3]"))

Script = Callable[[list[str], list[Any]], Awaitable[Any]]


class RedisCounters:
    """``Counters`` on a started ``relaystack.state.redis.RedisState`` (its ``script``)."""

    def __init__(self, state: Any, clock: Callable[[], float] | None = None) -> None:
        """``clock``: tests only (every instance must count on one clock: Redis's by default)."""
        self._clock = clock
        self._admit: Script = state.script(_ADMIT)
        self._settle: Script = state.script(_SETTLE)
        self._beat: Script = state.script(_BEAT)
        # one per process (each worker of --workers N holds its own slots)
        self.instance = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._heartbeat: asyncio.Task[None] | None = None

    async def start(self) -> None:
        with contextlib.suppress(StateUnavailableError):
            await self._beat([_INSTANCES], [self.instance, 3600, self._now()])
        self._heartbeat = asyncio.get_running_loop().create_task(self._beating(), name="relaystack-limits-heartbeat")

    async def stop(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None

    async def _beating(self) -> None:
        while True:
            await asyncio.sleep(_BEAT_S)
            try:
                await self._beat([_INSTANCES], [self.instance, 3600, self._now()])
            except StateUnavailableError:
                pass  # the state logs the outage; slots are reaped only after beats resume elsewhere
            except Exception:
                log.exception("The limits heartbeat failed")

    async def admit(self, ask: Ask) -> Outcome:
        windows, slots = ask.windows, ask.slots
        keys = [f"w:{w.name}" for w in windows] + [f"s:{name}" for name, _ in slots] + [_INSTANCES]
        args: list[Any] = [len(windows), len(slots), self.instance, _STALE_S, self._now()]
        for window in windows:
            args += (repr(window.bucket_seconds), window.limit, 1 if window.kind == "requests" else 0)
        args += (limit for _, limit in slots)
        reply = await self._admit(keys, args)
        return _outcome(ask, reply)

    async def settle(self, tokens: tuple[tuple[Window, int], ...], slots: tuple[str, ...]) -> None:
        counted = [(w, amount) for w, amount in tokens if amount > 0]
        if not counted and not slots:
            return
        keys = [f"w:{w.name}" for w, _ in counted] + [f"s:{name}" for name in slots]
        args: list[Any] = [len(counted), self.instance, _STALE_S, self._now()]
        for window, amount in counted:
            args += (repr(window.bucket_seconds), amount)
        await self._settle(keys, args)


    def _now(self) -> str:
        return "" if self._clock is None else repr(self._clock())


def _outcome(ask: Ask, reply: list[Any]) -> Outcome:
    allowed, refused, now = int(reply[0]), int(reply[1]), float(reply[2])
    states: list[WindowState] = []
    for index, window in enumerate(ask.windows):
        used, oldest = int(reply[3 + 2 * index]), int(reply[4 + 2 * index])
        states.append(WindowState(window, used, reset_after(window, None if oldest < 0 else oldest, now)))
    if allowed:
        return Outcome(True, tuple(states))
    if refused <= len(ask.windows):
        window = ask.windows[refused - 1]
        return Outcome(False, tuple(states[: refused - 1]), window, max(1.0, states[refused - 1].reset_s))
    return Outcome(False, tuple(states), ask.slots[refused - len(ask.windows) - 1][0], 1.0)
