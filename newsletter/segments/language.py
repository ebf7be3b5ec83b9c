"""The segment language: a small, safe filter over a list's readers, parsed by hand.

Not SQL: an expression is tokenised and parsed by a recursive-descent parser into a
tree of conditions (this module), which newsletter/segments/compile.py turns into
SQLAlchemy expressions with bound parameters, so nothing a user types reaches the
database as SQL. A malformed expression is one InvalidInput naming the column and what
was expected there.

    expression := term ("or" term)*
    term       := factor ("and" factor)*
    factor     := "not" factor | "(" expression ")" | condition
    condition  := "in_list" STRING
                | FIELD ("=" | "!=" | "<" | "<=" | ">" | ">=") value
                | FIELD "in" "(" value ("," value)* ")"
                | FIELD "contains" STRING
                | FIELD "exists"
    FIELD      := "attributes." NAME | status | language | timezone | frequency
                | signed_up | last_delivery | last_click
    value      := STRING | NUMBER | true | false | DATE | RELATIVE
    DATE       := YYYY-MM-DD (a day, UTC)
    RELATIVE   := N days ago | N weeks ago | N hours ago | -Nd | -Nw | -Nh (an instant)

Keywords are case-insensitive; strings are double-quoted with \\" and \\\\ escapes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

from newsletter.errors import InvalidInput

MAX_LENGTH = 2000
MAX_DEPTH = 30
FIELDS = (
    "status",
    "language",
    "timezone",
    "frequency",
    "signed_up",
    "last_delivery",
    "last_click",
)
OPERATORS = ("=", "!=", "<", "<=", ">", ">=")
_UNITS = {"d": 1, "day": 1, "days": 1, "w": 7, "week": 7, "weeks": 7}
_HOURS = {"h", "hour", "hours"}

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<relative>-(?P<rn>\d{1,5})(?P<ru>[dwh])\b)
  | (?P<date>\d{4}-\d{2}-\d{2})(?![\w-])
  | (?P<number>-?\d+(?:\.\d+)?)(?![\w.])
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<op>!=|<=|>=|=|<|>|\(|\)|,|\.)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    """,
    re.VERBOSE,
)


class SegmentError(InvalidInput):
    """A malformed expression: `column` is 1-based."""

    def __init__(self, column: int, message: str) -> None:
        super().__init__("where", f"column {column}: {message}")
        self.column = column


@dataclass(frozen=True)
class Token:
    kind: str  # word, string, number, date, relative, op, end
    text: str
    column: int
    value: object = None


# The tree ------------------------------------------------------------------------------

Scalar = str | int | float | bool


@dataclass(frozen=True)
class Day:
    """An absolute date: the whole UTC day."""

    day: date


@dataclass(frozen=True)
class Ago:
    """A relative instant: now minus `delta`."""

    delta: timedelta


Value = Scalar | Day | Ago


@dataclass(frozen=True)
class Field:
    name: str  # one of FIELDS, or "attributes"
    attribute: str | None
    column: int


@dataclass(frozen=True)
class Compare:
    field: Field
    op: str  # one of OPERATORS, "in", "contains", "exists"
    values: tuple[Value, ...]
    column: int


@dataclass(frozen=True)
class InList:
    slug: str
    column: int


@dataclass(frozen=True)
class Not:
    node: Node


@dataclass(frozen=True)
class BoolOp:
    op: str  # and, or
    nodes: tuple[Node, ...]


Node = Compare | InList | Not | BoolOp


# Tokens --------------------------------------------------------------------------------


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise SegmentError(pos + 1, f"unexpected character {text[pos]!r}")
        kind = m.lastgroup or ""
        if kind in ("rn", "ru"):
            kind = "relative"
        column = pos + 1
        raw = m.group(0)
        pos = m.end()
        if m.group("space"):
            continue
        if m.group("relative"):
            n, unit = int(m.group("rn")), m.group("ru")
            delta = timedelta(hours=n) if unit == "h" else timedelta(days=n * _UNITS[unit])
            tokens.append(Token("relative", raw, column, Ago(delta)))
        elif m.group("date"):
            try:
                day = date.fromisoformat(raw)
            except ValueError:
                raise SegmentError(column, f"{raw} is not a date") from None
            tokens.append(Token("date", raw, column, Day(day)))
        elif m.group("number"):
            tokens.append(Token("number", raw, column, float(raw) if "." in raw else int(raw)))
        elif m.group("string"):
            body = raw[1:-1]
            tokens.append(Token("string", raw, column, re.sub(r"\\(.)", r"\1", body)))
        elif m.group("op"):
            tokens.append(Token("op", raw, column))
        else:
            tokens.append(Token("word", raw.lower(), column))
    tokens.append(Token("end", "", len(text) + 1))
    return tokens


def _shown(token: Token) -> str:
    return "the end" if token.kind == "end" else repr(token.text)


# The parser ----------------------------------------------------------------------------


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.i = 0
        self.depth = 0

    @property
    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        token = self.tokens[self.i]
        if token.kind != "end":
            self.i += 1
        return token

    def fail(self, expected: str) -> SegmentError:
        token = self.peek
        return SegmentError(token.column, f"expected {expected}, found {_shown(token)}")

    def is_word(self, *words: str) -> bool:
        return self.peek.kind == "word" and self.peek.text in words

    def is_op(self, *ops: str) -> bool:
        return self.peek.kind == "op" and self.peek.text in ops

    def expect_op(self, op: str, expected: str) -> Token:
        if not self.is_op(op):
            raise self.fail(expected)
        return self.take()

    def expression(self) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"at most {MAX_DEPTH} nested parentheses or 'not'")
        nodes = [self.term()]
        while self.is_word("or"):
            self.take()
            nodes.append(self.term())
        self.depth -= 1
        return nodes[0] if len(nodes) == 1 else BoolOp("or", tuple(nodes))

    def term(self) -> Node:
        nodes = [self.factor()]
        while self.is_word("and"):
            self.take()
            nodes.append(self.factor())
        return nodes[0] if len(nodes) == 1 else BoolOp("and", tuple(nodes))

    def factor(self) -> Node:
        if self.is_word("not"):
            self.take()
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise self.fail(f"at most {MAX_DEPTH} nested parentheses or 'not'")
            negated = Not(self.factor())
            self.depth -= 1
            return negated
        if self.is_op("("):
            self.take()
            node = self.expression()
            self.expect_op(")", "')' or 'and' or 'or'")
            return node
        return self.condition()

    def condition(self) -> Node:
        token = self.peek
        if self.is_word("in_list"):
            self.take()
            slug = self.take()
            if slug.kind != "string":
                self.i -= 1 if slug.kind != "end" else 0
                raise self.fail('a list slug in double quotes, e.g. in_list "news"')
            return InList(str(slug.value), token.column)
        field = self.field()
        if self.is_op(*OPERATORS):
            op = self.take().text
            return Compare(field, op, (self.value(),), token.column)
        if self.is_word("in"):
            self.take()
            self.expect_op("(", "'(' after 'in', e.g. in (\"a\", \"b\")")
            values = [self.value()]
            while self.is_op(","):
                self.take()
                values.append(self.value())
            self.expect_op(")", "',' or ')'")
            return Compare(field, "in", tuple(values), token.column)
        if self.is_word("contains"):
            self.take()
            text = self.take()
            if text.kind != "string":
                self.i -= 1 if text.kind != "end" else 0
                raise self.fail("a text in double quotes after 'contains'")
            return Compare(field, "contains", (str(text.value),), token.column)
        if self.is_word("exists"):
            self.take()
            return Compare(field, "exists", (), token.column)
        raise self.fail("an operator (=, !=, <, <=, >, >=, in, contains, exists)")

    def field(self) -> Field:
        token = self.peek
        if self.is_word("attributes"):
            self.take()
            self.expect_op(".", "'.' and an attribute name, e.g. attributes.city")
            name = self.peek
            if name.kind != "word":
                raise self.fail("an attribute name after 'attributes.'")
            self.take()
            return Field("attributes", name.text, token.column)
        if self.is_word(*FIELDS):
            self.take()
            return Field(token.text, None, token.column)
        raise self.fail(
            "a condition: attributes.NAME, " + ", ".join(FIELDS) + ", in_list, not or '('"
        )

    def value(self) -> Value:
        token = self.peek
        if token.kind in ("string", "number", "date", "relative"):
            self.take()
            value = token.value
            if token.kind in ("number",) and self.is_word(*_UNITS, *_HOURS):
                unit = self.take().text
                if not self.is_word("ago"):
                    raise self.fail("'ago', e.g. 30 days ago")
                self.take()
                if not isinstance(value, int) or value < 0 or value > 99999:
                    raise SegmentError(token.column, "expected a whole number of days")
                if unit in _HOURS:
                    return Ago(timedelta(hours=value))
                return Ago(timedelta(days=value * _UNITS[unit]))
            assert isinstance(value, str | int | float | Day | Ago)
            return value
        if self.is_word("true", "false"):
            self.take()
            return token.text == "true"
        raise self.fail(
            'a value: "text", a number, true, false, a date (2026-01-31) or 30 days ago'
        )


def parse(text: str) -> Node:
    """The tree of an expression, or SegmentError naming the column."""
    if len(text) > MAX_LENGTH:
        raise SegmentError(MAX_LENGTH + 1, f"an expression is at most {MAX_LENGTH} characters")
    parser = _Parser(tokenize(text))
    if parser.peek.kind == "end":
        raise parser.fail('a condition, e.g. attributes.city = "Kyiv"')
    node = parser.expression()
    if parser.peek.kind != "end":
        raise parser.fail("'and', 'or' or the end")
    return node
