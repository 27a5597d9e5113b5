"""Value objects made by the thousand on hot paths (an eligibility batch builds some fifty
per invoice: its facts, checks and score features).

``@value`` declares a dataclass that the type checker treats as frozen (assigning to a
field is an error mypy reports) but that Python builds as a plain slotted dataclass. A
frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``, which
made it about four times as slow to build: over a batch of 10,000 invoices, frozen
construction was some 10 % of the CPU. Nothing mutates these objects; the type checker is
what keeps it so. Unlike a frozen dataclass they are not hashable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar, dataclass_transform

T = TypeVar("T")


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def value(cls: type[T]) -> type[T]:
    made: Callable[[type[T]], type[T]] = dataclass(slots=True)
    return made(cls)
