"""What every import handler gets and returns.

A handler reads one file (as a stream: files can be large), validates all of it and
writes what it derives through the session. It is all or nothing: when anything is
invalid it raises ``ImportRefused`` with every error found (capped), and the caller
rolls back everything the handler wrote.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from sqlalchemy.orm import Session

from escompte.clock import Clock
from escompte.models import Company, DataImport

MAX_ERRORS_KEPT = 100


@dataclass(frozen=True)
class ImportIssue:
    """One problem in the file: where (line number or XML path) and what."""

    message: str
    line: int | None = None
    path: str | None = None
    field: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "path": self.path, "field": self.field, "message": self.message}


class ImportRefused(Exception):
    def __init__(self, issues: list[ImportIssue], total: int | None = None) -> None:
        self.issues = issues[:MAX_ERRORS_KEPT]
        self.total = total if total is not None else len(issues)
        super().__init__(f"{self.total} error(s); first: {issues[0].message if issues else '-'}")


class IssueCollector:
    """Collects every error of a file (keeps the first MAX_ERRORS_KEPT, counts all)."""

    def __init__(self) -> None:
        self.issues: list[ImportIssue] = []
        self.total = 0

    def add(
        self, message: str, *, line: int | None = None, path: str | None = None, field: str | None = None
    ) -> None:
        self.total += 1
        if len(self.issues) < MAX_ERRORS_KEPT:
            self.issues.append(ImportIssue(message=message, line=line, path=path, field=field))

    def __bool__(self) -> bool:
        return self.total > 0

    def raise_if_any(self) -> None:
        if self.total:
            raise ImportRefused(self.issues, self.total)


@dataclass
class ImportContext:
    session: Session
    clock: Clock
    company: Company | None  # None for registry extracts
    data_import: DataImport
    open_stream: Callable[[], IO[bytes]]  # a fresh binary stream of the file each call
    size_bytes: int
    options: dict[str, Any]
    issues: IssueCollector = field(default_factory=IssueCollector)
    # progress(done, total): units are the handler's (bytes or lines); for progress bars
    progress: Callable[[int, int], None] = lambda done, total: None


@dataclass
class ImportOutcome:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    # per object type, e.g. {"book_lines": 1000000, "invoices": 5321, "payments": 4800}
    counts: dict[str, int] = field(default_factory=dict)


Handler = Callable[[ImportContext], ImportOutcome]
