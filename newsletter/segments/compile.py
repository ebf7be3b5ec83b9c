"""A parsed segment (newsletter/segments/language.py) as a SQLAlchemy condition over one
list's readers: a query of `Subscription` joined to `Subscriber` adds `.where(cond)`.

Every value is a bound parameter. On PostgreSQL attribute equality is JSONB containment
(`attributes @> '{"city": "Kyiv"}'`) and `exists` the `?` operator, both served by the GIN
index ix_subscribers_attributes, so counting a segment of a million readers stays fast.
Numeric comparisons read a value only when it looks like a number (a JSON number or a
numeric string), so a non-numeric value never raises: it does not match. Dates: an
absolute date is its whole UTC day (`signed_up = 2026-01-31`, `< 2026-01-31` before it,
`> 2026-01-31` after it); a relative one (`30 days ago`, `-30d`) is that instant.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Float,
    String,
    and_,
    case,
    cast,
    exists,
    func,
    literal,
    not_,
    or_,
    select,
    true,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import JSONB, JSONPATH
from sqlalchemy.orm import Session, aliased

from newsletter.models import (
    Delivery,
    DeliveryStatus,
    MailingList,
    Subscriber,
    Subscription,
    SubscriptionStatus,
)
from newsletter.segments.language import (
    Ago,
    BoolOp,
    Compare,
    Day,
    InList,
    Node,
    Not,
    SegmentError,
    Value,
    parse,
)

Cond = ColumnElement[bool]
_TEXT_FIELDS = {
    "status": Subscription.status,
    "language": Subscriber.language,
    "timezone": Subscriber.timezone,
    "frequency": Subscription.frequency,
}
_CHOICES = {
    "status": tuple(s.value for s in SubscriptionStatus),
    "frequency": ("every", "weekly"),
}
_DATE_FIELDS = ("signed_up", "last_delivery", "last_click")


@dataclass
class Context:
    session: Session
    mailing_list: MailingList
    now: datetime
    default_language: str
    dialect: str


def compile_segment(
    session: Session,
    mailing_list: MailingList,
    expression: str,
    *,
    now: datetime | None = None,
    default_language: str = "en",
) -> Cond:
    """The condition of `expression` over `mailing_list`'s readers, or SegmentError."""
    node = parse(expression)
    ctx = Context(
        session,
        mailing_list,
        now or datetime.now(UTC),
        default_language,
        session.get_bind().dialect.name,
    )
    return _node(ctx, node)


def _node(ctx: Context, node: Node) -> Cond:
    if isinstance(node, BoolOp):
        parts = [_node(ctx, n) for n in node.nodes]
        return and_(*parts) if node.op == "and" else or_(*parts)
    if isinstance(node, Not):
        return not_(_node(ctx, node.node))
    if isinstance(node, InList):
        return _in_list(ctx, node)
    return _compare(ctx, node)


def _in_list(ctx: Context, node: InList) -> Cond:
    other_id = ctx.session.scalar(select(MailingList.id).where(MailingList.slug == node.slug))
    if other_id is None:
        raise SegmentError(node.column, f"there is no list {node.slug!r}")
    other = aliased(Subscription)
    return exists().where(
        other.subscriber_id == Subscription.subscriber_id,
        other.list_id == other_id,
        other.status == SubscriptionStatus.confirmed,
    )


def _compare(ctx: Context, node: Compare) -> Cond:
    name = node.field.name
    if name == "attributes":
        return _attribute(ctx, node)
    if name in _TEXT_FIELDS:
        return _text_field(ctx, node)
    return _date_field(ctx, node)


# Plain text columns ---------------------------------------------------------------------


def _text_field(ctx: Context, node: Compare) -> Cond:
    name = node.field.name
    column: Any = _TEXT_FIELDS[name]
    if name == "language":
        column = func.coalesce(column, ctx.default_language)
    if node.op == "exists":
        if name in _CHOICES:
            return true()
        return column.is_not(None)
    values = []
    for v in node.values:
        if not isinstance(v, str):
            raise SegmentError(node.column, f"{name} compares with text in double quotes")
        if name in _CHOICES and v not in _CHOICES[name] and node.op in ("=", "!=", "in"):
            raise SegmentError(
                node.column, f"{name} is one of {', '.join(_CHOICES[name])}, not {v!r}"
            )
        values.append(v)
    if node.op == "contains":
        return _like(column, values[0])
    if node.op == "in":
        return column.in_(values)
    return _op(column, node.op, values[0], null_safe=True)


def _like(column: Any, text: str) -> Cond:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return func.lower(column).like(f"%{escaped.lower()}%", escape="\\")


def _op(column: Any, op: str, value: Any, *, null_safe: bool = False) -> Cond:
    if op == "=":
        return column == value
    if op == "!=":
        return or_(column != value, column.is_(None)) if null_safe else column != value
    if op == "<":
        return column < value
    if op == "<=":
        return column <= value
    if op == ">":
        return column > value
    return column >= value


# Dates ----------------------------------------------------------------------------------


def _instant(ctx: Context, value: Value, node: Compare) -> tuple[datetime, datetime] | datetime:
    """A day as (start, end) or an instant."""
    if isinstance(value, Day):
        start = datetime.combine(value.day, time(), tzinfo=UTC)
        return start, start + timedelta(days=1)
    if isinstance(value, Ago):
        return ctx.now - value.delta
    raise SegmentError(
        node.column, f"{node.field.name} compares with a date (2026-01-31) or 30 days ago"
    )


def _date_range(ctx: Context, node: Compare) -> tuple[datetime | None, datetime | None]:
    """The [lo, hi) instants a date comparison accepts (None: open)."""
    if node.op not in ("=", "<", "<=", ">", ">="):
        raise SegmentError(
            node.column, f"{node.field.name} takes =, <, <=, >, >= with a date, or exists"
        )
    at = _instant(ctx, node.values[0], node)
    start, end = at if isinstance(at, tuple) else (at, at)
    if node.op == "=":
        return (start, end) if start != end else (start, start + timedelta(seconds=1))
    if node.op == "<":
        return None, start
    if node.op == "<=":
        return None, end if isinstance(at, tuple) else end + timedelta(microseconds=1)
    if node.op == ">":
        return (end if isinstance(at, tuple) else end + timedelta(microseconds=1)), None
    return start, None


def _between(column: Any, lo: datetime | None, hi: datetime | None) -> Cond:
    parts = []
    if lo is not None:
        parts.append(column >= lo)
    if hi is not None:
        parts.append(column < hi)
    return and_(*parts)


def _date_field(ctx: Context, node: Compare) -> Cond:
    name = node.field.name
    if name == "last_click" and not ctx.mailing_list.track_clicks:
        raise SegmentError(
            node.column,
            f"last_click needs click tracking on list {ctx.mailing_list.slug} "
            "(lists update --track-clicks)",
        )
    if name == "last_delivery":
        return _last_delivery(ctx, node)
    column: Any = (
        Subscriber.last_click_at
        if name == "last_click"
        else func.coalesce(Subscription.confirmed_at, Subscription.created_at)
    )
    if node.op == "exists":
        return column.is_not(None)
    lo, hi = _date_range(ctx, node)
    return _between(column, lo, hi)


def _last_delivery(ctx: Context, node: Compare) -> Cond:
    """The reader's last sent delivery (any list), as EXISTS over deliveries by subscriber
    (uq_deliveries_subscriber_digest, led by subscriber_id): never a max() over the whole table."""

    def sent(lo: datetime | None = None, hi: datetime | None = None) -> Cond:
        d = aliased(Delivery)
        conds = [d.subscriber_id == Subscription.subscriber_id, d.status == DeliveryStatus.sent]
        if lo is not None:
            conds.append(d.updated_at >= lo)
        if hi is not None:
            conds.append(d.updated_at < hi)
        return exists().where(*conds)

    if node.op == "exists":
        return sent()
    lo, hi = _date_range(ctx, node)
    if lo is None:  # last one before hi: some sent, none since hi
        assert hi is not None
        return and_(sent(), not_(sent(lo=hi)))
    if hi is None:  # last one at or after lo: one since lo
        return sent(lo=lo)
    return and_(sent(lo=lo, hi=hi), not_(sent(lo=hi)))


# Attributes -----------------------------------------------------------------------------


def _attribute(ctx: Context, node: Compare) -> Cond:
    name = node.field.attribute or ""
    if ctx.dialect == "postgresql":
        return _attribute_pg(node, name)
    return _attribute_sqlite(node, name)


def _scalar(node: Compare, value: Value) -> str | int | float | bool:
    if isinstance(value, Day):
        return value.day.isoformat()
    if isinstance(value, Ago):
        raise SegmentError(node.column, "attributes compare with text, numbers or dates")
    return value


def _attribute_pg(node: Compare, name: str) -> Cond:
    doc: Any = type_coerce(Subscriber.attributes, JSONB)
    if node.op == "exists":
        return doc.has_key(name)  # noqa: W601 - JSONB ?, GIN-served

    def equal(value: Value) -> Cond:
        v = _scalar(node, value)
        if isinstance(v, int | float) and not isinstance(v, bool):
            # A number typed in a form or CSV is kept as text: match both forms.
            return or_(doc.contains({name: v}), doc.contains({name: str(v)}))
        return doc.contains({name: v})

    text = doc[name].astext
    if node.op == "=":
        return equal(node.values[0])
    if node.op == "!=":
        return not_(equal(node.values[0]))
    if node.op == "in":
        return or_(*[equal(v) for v in node.values])
    if node.op == "contains":
        return _like(text, str(node.values[0]))
    value = _scalar(node, node.values[0])
    if isinstance(value, bool):
        raise SegmentError(node.column, "true and false take = or !=")
    if isinstance(value, int | float):
        # jsonpath's .double() reads a JSON number or a numeric string; on anything else
        # it fails, which @@ answers with NULL: no match. The path is a constant: the
        # name is a parsed attribute name (letters, digits, _), the number one we format.
        path = f'$."{name}".double() {node.op} {float(value)!r}'
        return cast(doc.op("@@")(cast(literal(path), JSONPATH)), Boolean).is_(True)
    return _op(text, node.op, value)


def _attribute_sqlite(node: Compare, name: str) -> Cond:
    path = f'$."{name}"'
    raw: Any = func.json_extract(Subscriber.attributes, path)
    kind: Any = func.json_type(Subscriber.attributes, path)
    if node.op == "exists":
        return kind.is_not(None)

    def equal(value: Value) -> Cond:
        v = _scalar(node, value)
        if isinstance(v, bool):
            return and_(kind == ("true" if v else "false"))
        if isinstance(v, int | float):
            return or_(
                and_(kind.in_(("integer", "real")), raw == v),
                and_(kind == "text", raw == str(v)),
            )
        return and_(kind == "text", raw == v)

    if node.op == "=":
        return equal(node.values[0])
    if node.op == "!=":
        return or_(kind.is_(None), not_(equal(node.values[0])))  # missing: not equal
    if node.op == "in":
        return or_(*[equal(v) for v in node.values])
    text = cast(raw, String)
    if node.op == "contains":
        return and_(kind == "text", _like(text, str(node.values[0])))
    value = _scalar(node, node.values[0])
    if isinstance(value, bool):
        raise SegmentError(node.column, "true and false take = or !=")
    if isinstance(value, int | float):
        digits = func.ltrim(func.trim(text), "-")
        looks = and_(
            kind == "text",
            digits != "",
            digits.op("NOT GLOB")("*[^0-9.]*"),
            digits.op("GLOB")("[0-9]*"),
            not_(digits.op("GLOB")("*.*.*")),
        )
        numeric = case(
            (kind.in_(("integer", "real")), raw),
            (looks, cast(func.trim(text), Float)),
            else_=literal(None),
        )
        return _op(numeric, node.op, float(value))
    return and_(kind == "text", _op(raw, node.op, value))
