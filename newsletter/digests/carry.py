"""A send cancelled part-way: the readers it reached keep its stories, the others get
them in the next digest, and nobody gets a story twice.

A cancelled send that reached nobody gives its stories back whole: the next digest
selects them as new (compose.select_stories ignores it). One that reached some readers
used its stories up: the next digest carries them (Digest.carry) to the readers it did
not reach. Cancelled sends in a row since the last send that was not cancelled form a
chain C1..Ck, oldest first. Each C_j's mail to a reader held what that reader had
missed of C1..C_(j-1), so a reader whose newest delivery in the chain was C_m has the
stories of C1..C_m, and gets variant m of the next digest: the digest without them.
Variant 0 (the whole digest, for readers the chain never reached) is the Digest row;
variants 1..k are DigestVariant rows, and a variant left with no story has no row: its
readers are not in the ledger (sending/job.py), as they have everything already.

"Reached" is a delivery that is `sent` or still `sending` (in flight when the send was
cancelled or its worker died, so perhaps accepted): a reader may get a story late,
never twice.

Languages: a list whose readers use more than one language (Subscriber.language) and
whose templates say something different in another language gets, per such language,
the same variants again rendered in it (DigestVariant.language). With k links, the
variants of language slot s (0: the default language, then each other language in the
order of settings.language_codes) are numbered s·(k+1)+m, m = 0..k. A reader gets the
base number of their language (the number of its row with m = 0; the default's when
their language has no variant) plus their carry number m. A list with one language
used has variant 0 and the carry variants only, as before languages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, and_, case, exists, literal, select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    Digest,
    DigestStatus,
    DigestVariant,
    MailingList,
    Story,
)

if TYPE_CHECKING:
    from newsletter.digests.render import Composition

REACHED = (DeliveryStatus.sent, DeliveryStatus.sending)
_CHAIN_LOOKBACK = 100  # digests looked at, newest first, for the chain


@dataclass(frozen=True)
class Link:
    """One cancelled send of the chain and the stories it used up."""

    digest_id: int
    story_ids: list[int]

    def record(self) -> dict[str, Any]:
        return {"digest": self.digest_id, "story_ids": self.story_ids}


def reached_anyone(digest_id: Any) -> ColumnElement[bool]:
    """Did the send reach at least one reader? (`digest_id` may be a column.)"""
    return exists().where(Delivery.digest_id == digest_id, Delivery.status.in_(REACHED))


def consuming() -> ColumnElement[bool]:
    """Digests that used their stories up: all but drafts and sends cancelled before
    they reached anyone."""
    return and_(
        Digest.status != DigestStatus.draft,
        (Digest.status != DigestStatus.cancelled) | reached_anyone(Digest.id),
    )


def chain(session: Session, mailing_list: MailingList) -> list[Link]:
    """The sends cancelled part-way since the list's last send that was not cancelled,
    oldest first, each with the stories it used up (its own new ones).

    Exact when each link was composed after the one before it was cancelled (the usual
    order). A draft composed while the send before it was still running, then sent and
    cancelled part-way too, did not carry that send's stories: its readers get them
    late or not at all, never twice."""
    rows = session.execute(
        select(Digest.id, Digest.status, Digest.story_ids)
        .where(Digest.list_id == mailing_list.id, Digest.status != DigestStatus.draft)
        .order_by(Digest.created_at.desc(), Digest.id.desc())
        .limit(_CHAIN_LOOKBACK)
    ).all()
    links: list[Link] = []
    for digest_id, status, story_ids in rows:
        if status != DigestStatus.cancelled:
            break
        # One that reached nobody is skipped: its own stories are new again, and what it
        # carried is still owed by the links before it.
        if session.scalar(select(reached_anyone(digest_id))):
            links.append(Link(digest_id, list(story_ids or [])))
    links.reverse()
    return links


def links_of(digest: Digest) -> list[Link]:
    return links_from(digest.carry)


def links_from(records: Sequence[dict[str, Any]] | None) -> list[Link]:
    return [Link(int(r["digest"]), [int(i) for i in r["story_ids"]]) for r in records or []]


def variant_of_reader(
    links: Sequence[Link],
    subscriber_id: Any,
    languages: Mapping[str, int] | None = None,
    language: Any = None,
) -> ColumnElement[int]:
    """The variant a reader gets: m for the newest link that reached them, else 0, plus
    the base number of the reader's language (`languages`, from `languages_of`;
    `language` is the reader's language column, Subscriber.language)."""
    carried = _carry_number(links, subscriber_id)
    if not languages or language is None:
        return carried
    base = case(
        *((language == code, literal(number)) for code, number in languages.items()),
        else_=literal(0),
    )
    return base + carried if links else base


def languages_of(session: Session, digest_id: int, links: Sequence[Link]) -> dict[str, int]:
    """The digest's other languages, each with the number of its whole variant (m = 0);
    empty for a digest in one language."""
    step = len(links) + 1
    rows = session.execute(
        select(DigestVariant.language, DigestVariant.number).where(
            DigestVariant.digest_id == digest_id, DigestVariant.language.is_not(None)
        )
    ).all()
    return {lang: number for lang, number in rows if lang and number % step == 0}


def kept_variants(session: Session, digest_id: int, links: Sequence[Link]) -> list[int] | None:
    """The variant numbers a reader may have when some carry variant has no row (its
    readers have every story already and are not sent to); None when none is missing."""
    if not links:
        return None
    numbers = variant_numbers(session, digest_id)
    step = len(links) + 1
    slots = {n // step for n in numbers}
    if len(numbers) == step * len(slots):
        return None
    return sorted(numbers)


def _carry_number(links: Sequence[Link], subscriber_id: Any) -> ColumnElement[int]:
    if not links:
        return literal(0)
    whens = [
        (
            exists().where(
                Delivery.digest_id == link.digest_id,
                Delivery.subscriber_id == subscriber_id,
                Delivery.status.in_(REACHED),
            ),
            literal(number),
        )
        for number, link in reversed(list(enumerate(links, start=1)))
    ]
    return case(*whens, else_=literal(0))


def variant_numbers(session: Session, digest_id: int) -> set[int]:
    """The variants a digest has: 0 and those of its DigestVariant rows."""
    found = session.scalars(
        select(DigestVariant.number).where(DigestVariant.digest_id == digest_id)
    )
    return {0, *found}


def owed_stories(session: Session, links: Sequence[Link]) -> list[list[Story]]:
    """Each link's stories that still exist (a deleted story is owed to no one)."""
    wanted = {i for link in links for i in link.story_ids}
    found = {s.id: s for s in session.scalars(select(Story).where(Story.id.in_(wanted)))}
    return [[found[i] for i in link.story_ids if i in found] for link in links]


def with_owed(new: Sequence[Story], owed: Sequence[Sequence[Story]]) -> list[Story]:
    """The digest's order: its new stories in the editor's order, then the carried
    ones, those of the newest cancelled send first, each in its own digest's order."""
    return [*new, *(s for some in reversed(owed) for s in some)]


def render_variants(
    settings: Settings,
    mailing_list: MailingList,
    new: Sequence[Story],
    owed: Sequence[Sequence[Story]],
    *,
    now: datetime,
    digest_id: int,
    languages: Sequence[str] = (),
) -> dict[int, Composition]:
    """Variants 1..k: the new stories and those of the links after the m-th (none when
    that leaves nothing); then for each of `languages` (slot s = 1, 2, …) the whole
    digest as variant s·(k+1) and its carry variants s·(k+1)+m, rendered in it."""
    # The composer (Jinja2, lxml, Markdown) is loaded here, not with this module: starting
    # and sending a send reads the links only and keeps that memory out of its processes.
    from newsletter.digests.render import render_digest

    variants: dict[int, Composition] = {}
    step = len(owed) + 1
    for slot, language in enumerate([None, *languages]):
        for m in range(0 if language else 1, step):
            stories = with_owed(new, owed[m:])
            if stories:
                variants[slot * step + m] = render_digest(
                    settings, mailing_list, stories, now=now, digest_id=digest_id,
                    language=language,
                )  # fmt: skip
    return variants
