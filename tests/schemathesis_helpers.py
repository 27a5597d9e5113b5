"""Shared by the Schemathesis tests."""

from __future__ import annotations

import schemathesis
from schemathesis.generation.meta import ParameterLocation


def auth_headers(case: schemathesis.Case, headers: dict[str, str]) -> dict[str, str]:
    """The key to send, unless the case broke its headers on purpose: a negative case may
    drop the required Authorization and expect a 401, and adding it back would turn the
    check against the API."""
    if case.meta is not None and case.meta.is_negative_at(ParameterLocation.HEADER):
        return {}
    return headers
