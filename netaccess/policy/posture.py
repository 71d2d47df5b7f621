"""A finished posture session as the appliance keeps it: who reported, what every attribute
said, and what the verifiers decided. Values are JSON-ready (str, int, bool, lists, dicts),
so the store can keep them as they are and the CLI can show them."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class Verdict(enum.Enum):
    """The assessment result of a session (RFC 5792 §4.2.9 / RFC 5793 §4.6), worst first."""

    ERROR = "error"
    MAJOR_NONCOMPLIANCE = "major non-compliance"
    MINOR_NONCOMPLIANCE = "minor non-compliance"
    DONT_KNOW = "don't know"
    COMPLIANT = "compliant"


class Recommendation(enum.Enum):
    """The access recommendation (RFC 5793 §4.7), most restrictive first."""

    NO_ACCESS = "no access"
    QUARANTINED = "quarantined"
    ALLOWED = "allowed"


@dataclass(frozen=True, slots=True)
class ReportedAttribute:
    """One PA-TNC attribute an IMC sent: for which component (vendor, subtype), its
    (vendor, type), a readable name, and its value as JSON-ready data."""

    component_vendor: int
    component_subtype: int
    vendor: int
    type: int
    name: str
    value: Any


@dataclass(frozen=True, slots=True)
class RemediationItem:
    """Something the user can do to pass: what, and where (a link), both optional."""

    text: str
    link: str = ""


@dataclass(frozen=True, slots=True)
class PostureReport:
    ip: str
    started_at: float
    finished_at: float
    verdict: Verdict
    recommendation: Recommendation
    attributes: tuple[ReportedAttribute, ...] = ()
    reasons: tuple[str, ...] = ()
    remediation: tuple[RemediationItem, ...] = ()
    mac: str | None = None
    user: str | None = None  # "name@realm" when the agent signed in
    id: int | None = None  # the store's, once kept
