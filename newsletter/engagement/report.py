"""What the console shows of a send's engagement: clicks per story, people apart from
machines, and opens when the list has the pixel on.

One grouped read over engagements of the digest (index digest_id, story_id); stories
in the digest's order (its own, then carried ones), links that are not a story's in one
row "Other links" at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import case, distinct, func, select
from sqlalchemy.orm import Session

from newsletter.models import Digest, DigestLink, Engagement, MailingList, Story


@dataclass(frozen=True)
class StoryClicks:
    story_id: int | None
    title: str
    url: str | None
    clicks: int  # by people
    readers: int  # distinct people who clicked
    machine: int  # by scanners and proxies


@dataclass
class EngagementReport:
    track_clicks: bool
    track_opens: bool
    stories: list[StoryClicks] = field(default_factory=list)
    readers: int = 0  # distinct people who clicked any link
    opens_people: int = 0
    opens_machine: int = 0
    readers_opened: int = 0

    @property
    def clicks(self) -> int:
        return sum(s.clicks for s in self.stories)

    @property
    def machine(self) -> int:
        return sum(s.machine for s in self.stories)


def engagement_report(session: Session, digest_id: int) -> EngagementReport | None:
    """The digest's clicks per story (and opens), or None for an unknown digest."""
    digest = session.get(Digest, digest_id)
    if digest is None:
        return None
    mlist = session.get(MailingList, digest.list_id)
    report = EngagementReport(
        track_clicks=bool(mlist and mlist.track_clicks),
        track_opens=bool(mlist and mlist.track_opens),
    )
    person = Engagement.machine.is_(False)
    rows = session.execute(
        select(
            Engagement.story_id,
            func.sum(case((person, 1), else_=0)),
            func.count(distinct(case((person, Engagement.subscriber_id)))),
            func.sum(case((person, 0), else_=1)),
        )
        .where(Engagement.digest_id == digest_id, Engagement.kind == "click")
        .group_by(Engagement.story_id)
    ).all()
    counts = {story_id: (int(c or 0), int(r or 0), int(m or 0)) for story_id, c, r, m in rows}
    order: list[int] = list(digest.story_ids or [])
    for record in digest.carry or []:
        order.extend(i for i in record.get("story_ids", []) if i not in order)
    linked = session.scalars(
        select(DigestLink.story_id).where(
            DigestLink.digest_id == digest_id, DigestLink.story_id.is_not(None)
        )
    ).all()
    order.extend(i for i in linked if i is not None and i not in order)
    order.extend(i for i in counts if i is not None and i not in order)
    stories = {s.id: s for s in session.scalars(select(Story).where(Story.id.in_(order))) if order}
    for story_id in order:
        story = stories.get(story_id)
        c, r, m = counts.get(story_id, (0, 0, 0))
        title = story.title if story is not None else f"Story {story_id} (deleted)"
        report.stories.append(
            StoryClicks(story_id, title, story.url if story is not None else None, c, r, m)
        )
    if None in counts:
        c, r, m = counts[None]
        report.stories.append(StoryClicks(None, "Other links", None, c, r, m))
    if counts:
        report.readers = int(
            session.scalar(
                select(func.count(distinct(Engagement.subscriber_id))).where(
                    Engagement.digest_id == digest_id, Engagement.kind == "click", person
                )
            )
            or 0
        )
    if report.track_opens:
        opens = session.execute(
            select(
                func.sum(case((person, 1), else_=0)),
                func.sum(case((person, 0), else_=1)),
                func.count(distinct(case((person, Engagement.subscriber_id)))),
            ).where(Engagement.digest_id == digest_id, Engagement.kind == "open")
        ).one()
        report.opens_people = int(opens[0] or 0)
        report.opens_machine = int(opens[1] or 0)
        report.readers_opened = int(opens[2] or 0)
    return report
