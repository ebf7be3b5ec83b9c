"""A check's answer: what was found, whether it stops a send, and what to do about it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["ok", "warning", "blocking"]


@dataclass(frozen=True)
class Finding:
    """One check's result; `detail` says what was found and, when not ok, what to fix."""

    check: str
    ok: bool
    detail: str
    blocking: bool = False

    @property
    def severity(self) -> Severity:
        if self.ok:
            return "ok"
        return "blocking" if self.blocking else "warning"

    def record(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "ok": self.ok,
            "severity": self.severity,
            "blocking": self.severity == "blocking",
            "detail": self.detail,
        }


def passed(check: str, detail: str) -> Finding:
    return Finding(check, True, detail)


def problem(check: str, detail: str, *, blocking: bool) -> Finding:
    return Finding(check, False, detail, blocking)


@dataclass(frozen=True)
class Report:
    """Every finding of one preflight of a list's next digest."""

    list: str
    digest_id: int | None  # the stored digest checked; None: the next one, not stored yet
    findings: tuple[Finding, ...] = field(default=())

    @property
    def blocked(self) -> bool:
        return any(f.severity == "blocking" for f in self.findings)

    @property
    def warnings(self) -> int:
        return sum(1 for f in self.findings if f.severity == "warning")

    def record(self) -> dict[str, Any]:
        return {
            "list": self.list,
            "digest": self.digest_id,
            "ok": not self.blocked,
            "blocked": self.blocked,
            "warnings": self.warnings,
            "findings": [f.record() for f in self.findings],
        }
