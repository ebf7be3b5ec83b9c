"""Politeness: a global messages-per-second cap and per-destination-domain limits.

SEND_RATE is shared by every worker through Redis (a counter per one-second window)
when Redis is the broker, and per process on the embedded default (one machine, and a
per-process bucket needs no server). A domain that answers 4xx is backed off
exponentially by itself, as Gmail and Microsoft ask of bulk senders; until the backoff
ends its deliveries are deferred without being tried. The backoff is one state per
domain for every worker process and thread (a Redis hash changed by one Lua script;
per process on the embedded default): see DomainThrottle.

Redis may restart under a running send (production runs it without persistence): the
limits then fall back to this process's own bookkeeping until Redis answers again,
rather than failing the batch with messages accepted but not yet in the ledger.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError

log = logging.getLogger(__name__)
STRIKES = 3  # temporary refusals in a row before a domain is backed off
MAX_BACKOFF = 3600.0  # seconds: the longest a domain is backed off at once
PROBE_SECONDS = 30.0  # a probe not answered by then (lost worker, 5xx) lets another one go
CACHE_SECONDS = 1.0  # how long a process trusts its last look at a domain's shared state

# What DomainThrottle learns of a domain (the Lua script's answers as well).
_CLEAR, _BLOCKED, _HELD, _PROBE = "clear", "blocked", "held", "probe"
_STRIKE, _BACKOFF, _IGNORED = "strike", "backoff", "ignored"


class RateLimiter:
    """At most `rate` acquisitions per second under `key`, across processes with Redis."""

    def __init__(self, rate: float, client: Any | None, key: str = "nl:rate") -> None:
        self.rate = rate
        self.client = client
        self.key = key
        self._tokens = 0.0
        self._stamp = time.monotonic()

    def acquire(self) -> None:
        while (wait := self.reserve()) > 0:
            time.sleep(wait)

    def reserve(self) -> float:
        """One acquisition now (0.0 returned) or the seconds to wait before asking again
        (nothing taken): for an event loop, which must not sleep in here."""
        if self.rate <= 0:
            return 0.0
        if self.client is None:
            return self._local()
        try:
            return self._shared()
        except RedisError:
            log.warning("Redis unavailable; capping the rate per process for now")
            return self._local()

    def _local(self) -> float:
        now = time.monotonic()
        # At most a tenth of a second banked, as the shared cap's windows: a worker
        # that stalled (a slow relay, a loaded machine) must not catch up in a burst.
        cap = max(1.0, self.rate / 10)
        self._tokens = min(cap, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / self.rate

    def _shared(self) -> float:
        # Windows of 1/10 s keep bursts small; the cap per window is rate/10 (at least 1).
        per_window = max(1, int(self.rate / 10))
        span = 0.1 if self.rate >= 10 else per_window / self.rate
        now = time.time()
        window = int(now / span)
        key = f"{self.key}:{window}"
        pipe = self.client.pipeline()  # type: ignore[union-attr]
        pipe.incr(key)
        pipe.expire(key, 5)
        count = pipe.execute()[0]
        if count <= per_window:
            return 0.0
        return max(0.001, (window + 1) * span - now)


def _backoff(base: float, level: int) -> float:
    return min(MAX_BACKOFF, base * 2.0 ** min(level, 12))


# One domain's backoff in Redis: a hash (strikes, level, until, probe, probe_until)
# changed only by this script, so processes racing on it cannot double a backoff.
# KEYS[1] the hash; ARGV: op ("check" or "fail"), now, owner, base, probe_ttl, STRIKES,
# MAX_BACKOFF. Answers {outcome, until (a string: Lua numbers come back as integers),
# level, strikes}.
_SCRIPT = """
local key, op, now, owner = KEYS[1], ARGV[1], tonumber(ARGV[2]), ARGV[3]
local f = redis.call('HMGET', key, 'strikes', 'level', 'until', 'probe', 'probe_until')
local strikes = tonumber(f[1]) or 0
local level = tonumber(f[2]) or 0
local untl = tonumber(f[3]) or 0
local probe = f[4]
local probe_until = tonumber(f[5]) or 0
if op == 'check' then
  if untl == 0 then return {'clear', '0', level, strikes} end
  if untl > now then return {'blocked', f[3], level, strikes} end
  if probe and probe_until > now then
    if probe == owner then return {'probe', f[5], level, strikes} end
    return {'held', f[5], level, strikes}
  end
  local deadline = string.format('%.6f', now + tonumber(ARGV[5]))
  redis.call('HSET', key, 'probe', owner, 'probe_until', deadline)
  return {'probe', deadline, level, strikes}
end
local function back_off(lvl)
  local span = math.min(tonumber(ARGV[7]), tonumber(ARGV[4]) * 2 ^ math.min(lvl, 12))
  local new_until = string.format('%.6f', now + span)
  redis.call('HSET', key, 'level', lvl, 'until', new_until, 'strikes', 0)
  redis.call('HDEL', key, 'probe', 'probe_until')
  redis.call('EXPIRE', key, math.ceil(span) + 3600)
  return {'backoff', new_until, lvl, 0}
end
if probe and probe == owner then return back_off(level + 1) end
if untl > 0 then return {'ignored', f[3], level, strikes} end
strikes = redis.call('HINCRBY', key, 'strikes', 1)
if strikes < tonumber(ARGV[6]) then
  redis.call('EXPIRE', key, 3600)
  return {'strike', '0', level, strikes}
end
return back_off(level)
"""


class _Backoff:
    """One domain's backoff in this process: the state machine of _SCRIPT, in Python."""

    __slots__ = ("level", "probe", "probe_until", "strikes", "until")

    def __init__(self) -> None:
        self.strikes = 0
        self.level = 0
        self.until = 0.0  # 0: not backed off since the last accept
        self.probe: str | None = None  # who probes the domain now
        self.probe_until = 0.0


class LocalBackoffs:
    """The domains' backoffs of one process, shared by its threads: the embedded
    default (one machine), and the fallback while Redis is away."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.domains: dict[str, _Backoff] = {}

    def check(self, domain: str, now: float, owner: str, probe_ttl: float) -> tuple[str, float]:
        """(outcome, until): clear, blocked (backed off), held (another one probes) or
        probe (`owner` may send one message: the probe)."""
        if not self.domains:
            return _CLEAR, 0.0
        with self.lock:
            state = self.domains.get(domain)
            if state is None or state.until == 0.0:
                return _CLEAR, 0.0
            if state.until > now:
                return _BLOCKED, state.until
            if state.probe is not None and state.probe_until > now:
                return (_PROBE if state.probe == owner else _HELD), state.probe_until
            state.probe, state.probe_until = owner, now + probe_ttl
            return _PROBE, state.probe_until

    def backed_off(self, domain: str, now: float) -> float | None:
        """Until when `domain` is backed off here (no probe is taken)."""
        state = self.domains.get(domain)
        return state.until if state is not None and state.until > now else None

    def fail(self, domain: str, now: float, owner: str, base: float) -> tuple[str, float, int]:
        """A 4xx from `domain`: (outcome, until, level)."""
        with self.lock:
            state = self.domains.get(domain)
            if state is None:
                state = self.domains[domain] = _Backoff()
            if state.probe is not None and state.probe == owner:
                state.level += 1  # the probe failed: one level up, backed off again
            elif state.until > 0.0:
                # Backed off already (an answer to a message in flight), or waiting for
                # the probe's answer: not a strike.
                return _IGNORED, state.until, state.level
            else:
                state.strikes += 1
                if state.strikes < STRIKES:
                    return _STRIKE, 0.0, state.level
            state.strikes, state.probe, state.probe_until = 0, None, 0.0
            state.until = now + _backoff(base, state.level)
            return _BACKOFF, state.until, state.level

    def clear(self, domain: str) -> None:
        with self.lock:
            self.domains.pop(domain, None)


PROCESS_BACKOFFS = LocalBackoffs()


class DomainThrottle:
    """Per-domain backoff after 4xx replies, plus an optional per-domain rate.

    One state per domain for all processes and threads (`_SCRIPT` in Redis, else
    PROCESS_BACKOFFS): STRIKES 4xx in a row back the domain off for base × 2^level
    seconds; the 4xx answers to messages in flight meanwhile are not strikes. When the
    backoff ends one message is let through (the probe: `blocked_until` gives it to
    the first one asking; the others are held back until its answer, or PROBE_SECONDS
    if none comes). An accept, the probe's or any other, clears the domain's state; a
    4xx to the probe raises the level by one and backs the domain off again.

    One instance per worker thread (WorkerContext): the probe belongs to an instance,
    and it is one message: the `acquire` before its delivery uses it up, so the next
    message of the same batch is not even primed before the probe's answer.
    """

    def __init__(
        self,
        base_backoff: float,
        rate: float,
        client: Any | None,
        *,
        local: LocalBackoffs | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.base = base_backoff
        self.rate = rate
        self.client = client
        self.local = PROCESS_BACKOFFS if local is None else local
        self.clock = clock
        self.owner = uuid.uuid4().hex
        self.probe_ttl = min(PROBE_SECONDS, max(1.0, base_backoff))
        self.poll = min(CACHE_SECONDS, max(0.05, base_backoff))  # held back while probing
        self._limiters: dict[str, RateLimiter] = {}
        self._probes: dict[str, tuple[bool, float]] = {}  # domain → (sent yet, deadline)
        self._seen: dict[str, tuple[float, float | None]] = {}  # domain → (fresh till, until)
        self._stateful: set[str] = set()  # domains last seen with a state in Redis
        self._script = client.register_script(_SCRIPT) if client is not None else None

    def blocked_until(self, domain: str) -> float | None:
        """The epoch time a backed-off domain may be tried again, or None if it may now
        (for the probe, too: the first one asking when a backoff ends is given it)."""
        now = self.clock()
        probe = self._probes.get(domain)
        if probe is not None:
            if now < probe[1]:
                return min(probe[1], now + self.poll) if probe[0] else None
            del self._probes[domain]  # not answered in time: ask again
        if self._script is None:
            return self._answer(
                domain, now, *self.local.check(domain, now, self.owner, self.probe_ttl)
            )
        # Asked per message: a look at the shared state is trusted for a moment.
        seen = self._seen.get(domain)
        if seen is not None and now < seen[0]:
            return seen[1]
        try:
            outcome, raw, _level, strikes = self._run("check", domain, now)
        except RedisError:
            # This process's own backoffs while Redis is away (Redis asked again in a
            # second, not per message: a connect timeout each time would stall the batch).
            answer = self._answer(
                domain, now, *self.local.check(domain, now, self.owner, self.probe_ttl)
            )
            self._seen[domain] = (now + CACHE_SECONDS, answer)
            return answer
        until = float(raw)
        if outcome == _CLEAR:
            if strikes:
                self._stateful.add(domain)
            else:
                self._stateful.discard(domain)
                self._seen[domain] = (now + CACHE_SECONDS, None)
            return self.local.backed_off(domain, now) if self.local.domains else None
        self._stateful.add(domain)
        if outcome == _BLOCKED:
            self._seen[domain] = (min(until, now + CACHE_SECONDS), until)
        elif outcome == _HELD:
            self._seen[domain] = (min(until, now + self.poll), min(until, now + self.poll))
        return self._answer(domain, now, outcome, until)

    def _answer(self, domain: str, now: float, outcome: str, until: float) -> float | None:
        if outcome == _CLEAR:
            return None
        if outcome == _PROBE:
            self._probes[domain] = (False, until)
            return None
        if outcome == _HELD:
            return min(until, now + self.poll)
        return until

    def temporary_failure(self, domain: str) -> float | None:
        """Note a 4xx from `domain`; after STRIKES in a row, back the domain off (or a
        level further, if this was the probe). Returns the end of the backoff, if any.

        One greylisted address is not the domain asking us to slow down; several
        temporary refusals in a row without a success in between are.
        """
        now = self.clock()
        self._probes.pop(domain, None)
        self._seen.pop(domain, None)
        self._stateful.add(domain)
        outcome, until, level = self._fail(domain, now)
        if outcome == _BACKOFF:
            if self._script is not None:
                self._seen[domain] = (min(until, now + CACHE_SECONDS), until)
            log.info("%s answers 4xx: backed off for %.1f s (level %d)", domain, until - now, level)
        return until if until > now else None

    def _fail(self, domain: str, now: float) -> tuple[str, float, int]:
        if self._script is not None:
            try:
                outcome, raw, level, _strikes = self._run("fail", domain, now)
                return outcome, float(raw), level
            except RedisError:
                pass  # this process's own count while Redis is away
        return self.local.fail(domain, now, self.owner, self.base)

    def success(self, domain: str) -> None:
        """An accept clears the domain's state: its strikes, backoff and level (costs a
        call only for a domain this process saw with a state)."""
        if self.local.domains:
            self.local.clear(domain)
        if domain in self._stateful or domain in self._probes:
            self._stateful.discard(domain)
            self._probes.pop(domain, None)
            self._seen.pop(domain, None)
            if self.client is not None:
                try:
                    self.client.delete(_key(domain))
                except RedisError:
                    pass

    def acquire(self, domain: str) -> None:
        """Called right before a message to `domain` goes out: a probe is used up."""
        while (wait := self.reserve(domain)) > 0:
            time.sleep(wait)

    def reserve(self, domain: str) -> float:
        """acquire() that does not sleep: 0.0 when the message may go now (a probe is
        used up), else the seconds to wait before asking again."""
        if self._probes:
            probe = self._probes.get(domain)
            if probe is not None and not probe[0]:
                self._probes[domain] = (True, probe[1])
        if self.rate <= 0:
            return 0.0
        limiter = self._limiters.get(domain)
        if limiter is None:
            limiter = self._limiters[domain] = RateLimiter(
                self.rate, self.client, key=f"nl:domain:{domain}:rate"
            )
        return limiter.reserve()

    def state(self, domain: str) -> dict[str, str]:
        """The domain's shared state as stored (for tests and operators)."""
        if self.client is None:
            found = self.local.domains.get(domain)
            if found is None:
                return {}
            return {
                "strikes": str(found.strikes),
                "level": str(found.level),
                "until": str(found.until),
            }
        raw = self.client.hgetall(_key(domain))
        return {_text(k): _text(v) for k, v in raw.items()}

    def _run(self, op: str, domain: str, now: float) -> tuple[str, bytes, int, int]:
        assert self._script is not None
        answer = self._script(
            keys=[_key(domain)],
            args=[
                op,
                repr(now),
                self.owner,
                repr(self.base),
                repr(self.probe_ttl),
                STRIKES,
                MAX_BACKOFF,
            ],
        )
        outcome, until, level, strikes = answer
        return _text(outcome), until, int(level), int(strikes)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _key(domain: str) -> str:
    return f"nl:domain:{domain}:backoff"
