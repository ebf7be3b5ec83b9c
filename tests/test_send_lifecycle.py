"""The send lifecycle: its transition table, and every send reaching a final state.

The property test runs random interleavings of the operator's pause, resume, cancel and
retry, an outage pause, recovery ticks, and the steps of the batches (admit, take, send,
finish: batch.Batch, as run_batch takes them) on a real database (SQLite and PostgreSQL)
against a real SMTP server. The broker is modelled by a list of tasks, as
workers/tasks.py queues them (a batch per range, complete_ledger while the ledger is
incomplete, a batch again after its retry_in). When the operations stop, the queue is
drained; then at most one resume by the operator and one recovery tick (each followed by
draining the queue) must leave the send `sent` or `cancelled` with no delivery open.
"""

from __future__ import annotations

import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import func, select

from newsletter.config import Settings, get_settings
from newsletter.db import session_scope
from newsletter.errors import Conflict, InvalidInput
from newsletter.models import Delivery, Digest, DigestStatus
from newsletter.sending import batch as batch_module
from newsletter.sending import control, lifecycle
from newsletter.sending.batch import Batch
from newsletter.sending.job import OPEN, Range, complete_ledger, recover_stalled, start_send
from newsletter.sending.lifecycle import (
    FINAL,
    TRANSITIONS,
    Event,
    IllegalTransition,
    PausedBy,
    next_status,
)
from tests.send_support import populate
from tests.services import SmtpRules, SmtpServer

S = DigestStatus


# The table ---------------------------------------------------------------------------


def test_the_transition_table() -> None:
    assert {e: (set(t.sources), t.target) for e, t in TRANSITIONS.items()} == {
        Event.start: ({S.draft, S.scheduled, S.awaiting_approval}, S.sending),
        Event.pause: ({S.sending}, S.paused),
        Event.resume: ({S.paused}, S.sending),
        Event.cancel: ({S.scheduled, S.sending, S.paused}, S.cancelled),
        Event.finish: ({S.sending}, S.sent),
        Event.retry: ({S.sending, S.paused, S.sent}, S.sending),
        Event.submit: ({S.draft}, S.awaiting_approval),
        Event.withdraw: ({S.awaiting_approval}, S.draft),
        Event.schedule: ({S.draft}, S.scheduled),
        Event.unschedule: ({S.scheduled}, S.draft),
    }


def test_every_state_that_is_not_final_has_a_path_to_a_final_one() -> None:
    for status in set(S) - FINAL:
        seen, todo = {status}, [status]
        while todo:
            here = todo.pop()
            for transition in TRANSITIONS.values():
                if here in transition.sources and transition.target not in seen:
                    seen.add(transition.target)
                    todo.append(transition.target)
        assert seen & FINAL, status
    # A final state moves on only by a retry of failed deliveries (sent), or never.
    assert [e for e, t in TRANSITIONS.items() if S.cancelled in t.sources] == []
    assert [e for e, t in TRANSITIONS.items() if S.sent in t.sources] == [Event.retry]


def test_next_status_answers_from_the_table_and_refuses_the_rest() -> None:
    for event, transition in TRANSITIONS.items():
        for status in S:
            if status in transition.sources:
                assert next_status(status, event) == transition.target
            else:
                with pytest.raises(IllegalTransition) as refused:
                    next_status(status, event)
                assert isinstance(refused.value, Conflict)  # HTTP 409
                assert isinstance(refused.value, InvalidInput)  # CLI exit 2
                assert refused.value.current == status and refused.value.event == event
                assert f"is {status}" in str(refused.value)


# The real thing ----------------------------------------------------------------------


@pytest.fixture
def cfg(
    database: str, smtp_server: SmtpServer, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """Small batches, a first chunk smaller than the list, no deferrals (a temporary
    refusal fails at once, no domain is held back), recovery at every tick, and the
    batches asking for pause or cancel before every message."""
    monkeypatch.setenv("NEWSLETTER_SEND_BATCH_SIZE", "2")
    monkeypatch.setenv("NEWSLETTER_SEND_FIRST_CHUNK", "3")
    monkeypatch.setenv("NEWSLETTER_SEND_MAX_ATTEMPTS", "1")
    get_settings.cache_clear()
    monkeypatch.setattr(batch_module, "CONTROL_SECONDS", 0.0)
    # Below the fields' own bounds, which only guard an operator's configuration.
    return get_settings().model_copy(
        update={"send_domain_backoff_seconds": 0.0, "send_stall_seconds": 0.0}
    )


def _readers(rules: SmtpRules, n: int = 7) -> tuple[str, list[str]]:
    """A list of its own (the examples share a database), one reader who bounces and one
    whose server refuses for now (failed at once here: retry queues them again)."""
    slug = f"l{uuid.uuid4().hex[:10]}"
    emails = [f"reader{i}-{slug}@example.org" for i in range(n)]
    rules.reject.add(emails[1])
    rules.defer.add(emails[min(4, n - 1)])
    return slug, emails


@dataclass
class World:
    """One send, the broker's queue of tasks for it and the batches under way."""

    cfg: Settings
    digest_id: int
    queue: deque[tuple[str, int, int]] = field(default_factory=deque)
    running: list[tuple[Batch, int]] = field(default_factory=list)  # (batch, next step)
    log: list[str] = field(default_factory=list)

    def enqueue(self, ranges: list[Range]) -> None:
        """workers.tasks.enqueue_ranges: the rest of the ledger first, while incomplete."""
        with session_scope() as session:
            complete = session.scalar(
                select(Digest.ledger_complete).where(Digest.id == self.digest_id)
            )
        if complete is False:
            self.queue.append(("ledger", 0, 0))
        self.queue.extend(("batch", lo, hi) for lo, hi in ranges)

    def start(self) -> None:
        with session_scope() as session:
            digest = session.get(Digest, self.digest_id)
            assert digest is not None
            ranges = start_send(session, self.cfg, digest)
        self.enqueue(ranges)

    def control(self, action: str) -> None:
        ranges: list[Range] = []
        try:
            with session_scope() as session:
                if action == "pause":
                    control.operator_pause(session, self.digest_id)
                elif action == "resume":
                    ranges = control.operator_resume(session, self.cfg, self.digest_id)
                elif action == "cancel":
                    control.cancel(session, self.digest_id)
                elif action == "retry":
                    ranges = control.retry_failed(session, self.cfg, self.digest_id)
                elif action == "outage":  # as a batch that cannot connect does
                    reason = "SMTP server unreachable: test"
                    lifecycle.pause(session, self.digest_id, PausedBy.outage, reason)
                elif action == "bounce_rate":  # as check_bounce_rate does
                    reason = "hard-bounce and complaint rate over the threshold"
                    lifecycle.pause(session, self.digest_id, PausedBy.bounce_rate, reason)
        except InvalidInput:
            return  # refused, as the CLI and the API would
        self.enqueue(ranges)

    def recover(self) -> None:
        with session_scope() as session:
            found = recover_stalled(session, self.cfg)
        for digest_id, ranges in found:
            # Only this one: an example hypothesis cut short leaves its send mid-way.
            if digest_id == self.digest_id:
                self.enqueue(ranges)

    def pick_task(self, index: int) -> None:
        """A worker takes a task off the queue (not necessarily the first: several
        workers, prefetch, countdowns)."""
        if not self.queue:
            return
        self.queue.rotate(-(index % len(self.queue)))
        kind, lo, hi = self.queue.popleft()
        if kind == "ledger":
            with session_scope() as session:
                ranges = complete_ledger(session, self.cfg, self.digest_id)
            self.queue.extend(("batch", a, b) for a, b in ranges)
            return
        self.running.append((Batch(self.cfg, self.digest_id, lo, hi), 0))
        self.step(len(self.running) - 1)

    def step(self, index: int) -> None:
        """One step of a batch under way: admit, take, send, finish."""
        if not self.running:
            return
        index %= len(self.running)
        batch, at = self.running[index]
        if at == 0:
            if not batch.admit():
                del self.running[index]
                self._done(batch)
                return
        elif at == 1:
            batch.take()
        elif at == 2:
            batch.send()
        else:
            batch.finish()
            del self.running[index]
            self._done(batch)
            return
        self.running[index] = (batch, at + 1)

    def _done(self, batch: Batch) -> None:
        """What the send_batch task does with a result."""
        if batch.result.enqueue:
            self.enqueue(batch.result.enqueue)
        if batch.result.retry_in is not None:
            self.queue.append(("batch", batch.lo, batch.hi))

    def drain(self) -> None:
        for _ in range(500):
            if self.running:
                self.step(0)
            elif self.queue:
                self.pick_task(0)
            else:
                return
        raise AssertionError("the queue never empties")

    def state(self) -> tuple[str, str | None, int]:
        with session_scope() as session:
            digest = session.get(Digest, self.digest_id)
            assert digest is not None
            open_rows = session.scalar(
                select(func.count()).where(
                    Delivery.digest_id == self.digest_id, Delivery.status.in_(OPEN)
                )
            )
            return digest.status, digest.paused_by, int(open_rows or 0)


# Pause and resume twice as often as the others: the races are there.
ACTIONS = ["pause", "pause", "resume", "resume", "cancel", "retry", "outage", "bounce_rate"]
SCHEDULE = st.lists(
    st.tuples(st.integers(0, 14), st.sampled_from([*ACTIONS, "recover"])), max_size=5
)


def _play(world: World, data: st.DataObject) -> None:
    """Run the send with a few actions at moments hypothesis picks (a moment is one step
    of the workers), the workers' order picked too; then the operations stop, and only
    the workers, one resume by the operator and beat's tick remain."""
    world.start()
    schedule = sorted(data.draw(SCHEDULE, label="actions"))
    moment = 0
    while schedule or world.queue or world.running:
        while schedule and schedule[0][0] <= moment:
            _, action = schedule.pop(0)
            world.log.append(action)
            world.recover() if action == "recover" else world.control(action)
        if world.queue or world.running:
            take_task = not world.running or (world.queue and data.draw(st.booleans()))
            pick = data.draw(st.integers(0, 3))
            world.log.append(f"{'task' if take_task else 'step'} {pick}")
            world.pick_task(pick) if take_task else world.step(pick)
        moment += 1
        assert moment < 300, world.log
    # The operations stop; the workers run what is queued and under way.
    world.drain()
    status, paused_by, _ = world.state()
    if status == S.paused and paused_by != PausedBy.outage:
        world.control("resume")  # the operator (an outage pause resumes by itself)
        world.drain()
    world.recover()  # beat's tick
    world.drain()
    status, paused_by, open_rows = world.state()
    assert status in FINAL and open_rows == 0, (status, paused_by, open_rows, world.log)


def test_every_send_reaches_a_final_state(cfg: Settings, smtp_rules: SmtpRules) -> None:
    @hsettings(
        max_examples=25,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        database=None,
    )
    @given(readers=st.integers(2, 6), data=st.data())
    def run(readers: int, data: st.DataObject) -> None:
        slug, emails = _readers(smtp_rules, readers)
        world = World(cfg, populate(emails, slug=slug))
        _play(world, data)

    run()


def test_a_send_paused_while_its_last_batch_finishes_ends_sent_on_resume(
    cfg: Settings, smtp_rules: SmtpRules
) -> None:
    """The race: the batch finds the send paused and cannot finish it; the resume that
    follows has no range left to enqueue, so it finishes the send itself."""
    slug, emails = _readers(smtp_rules, n=2)
    world = World(cfg, populate(emails, slug=slug))
    world.start()
    world.pick_task(0)  # admitted
    world.step(0)  # take
    world.step(0)  # send: both rows done
    world.control("pause")
    world.step(0)  # finish: nothing open, but paused
    assert world.state() == (S.paused, PausedBy.operator, 0)
    with session_scope() as session:
        assert control.operator_resume(session, cfg, world.digest_id) == []
    assert world.state() == (S.sent, None, 0)


def test_recovery_finishes_a_sending_send_with_nothing_open(
    cfg: Settings, smtp_rules: SmtpRules
) -> None:
    """Left sending with nothing open and no batch to come (as a resume before this fix
    left it): beat's recovery finishes it rather than enqueueing nothing for ever."""
    slug, emails = _readers(smtp_rules, n=2)
    world = World(cfg, populate(emails, slug=slug))
    world.start()
    world.pick_task(0)
    world.step(0)
    world.step(0)
    world.control("pause")
    world.step(0)
    with session_scope() as session:
        assert lifecycle.resume(session, world.digest_id)  # without finish_if_done
    assert world.state() == (S.sending, None, 0)
    world.recover()
    assert not world.queue and world.state() == (S.sent, None, 0)


def test_an_outage_pause_with_nothing_left_resumes_and_finishes_on_recovery(
    cfg: Settings, smtp_rules: SmtpRules
) -> None:
    slug, emails = _readers(smtp_rules, n=2)
    world = World(cfg, populate(emails, slug=slug))
    world.start()
    world.pick_task(0)
    world.step(0)
    world.step(0)
    world.control("outage")
    world.step(0)
    assert world.state() == (S.paused, PausedBy.outage, 0)
    world.recover()
    assert world.state() == (S.sent, None, 0)
