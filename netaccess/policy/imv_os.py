"""The built-in operating-system IMV (RFC 5792's OS component, subtype 1): keeps what the
OS IMC reports (product, versions, operational status, IP forwarding, factory default
password), asks once for the Installed Packages list when configured to, and judges the
two facts it can judge alone. Host Checker policies (OS levels, patches) build on these
facts later; this is the floor."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from netaccess.policy.imv import ImvEvaluation, PaDelivery, PaReply, PostureEndpoint
from netaccess.policy.posture import Recommendation, RemediationItem, Verdict
from netaccess.proto.tnc.errors import IETF_PEN
from netaccess.proto.tnc.pa import (
    AttributeRequest,
    ComponentSubtype,
    FactoryDefaultPasswordEnabled,
    ForwardingEnabled,
    ForwardingState,
    InstalledPackages,
    NumericVersion,
    ProductInformation,
    StringVersion,
    attribute_key,
)


@dataclass(frozen=True, slots=True)
class OsFacts:
    product: str | None = None
    version: str | None = None
    numeric_version: tuple[int, int, int, int, int] | None = None
    forwarding: ForwardingState | None = None
    default_password: bool | None = None
    packages: int | None = None  # how many, once the list came


class OsImv:
    name = "os"
    subscriptions = frozenset({(IETF_PEN, int(ComponentSubtype.OPERATING_SYSTEM))})

    def __init__(self, *, request_packages: bool = True) -> None:
        self.request_packages = request_packages

    def open(self, endpoint: PostureEndpoint) -> OsImvSession:
        return OsImvSession(self.request_packages)


class OsImvSession:
    def __init__(self, request_packages: bool) -> None:
        self._request_packages = request_packages
        self._asked = False
        self.heard = False
        self.product: str | None = None
        self.version: str | None = None
        self.numeric_version: tuple[int, int, int, int, int] | None = None
        self.forwarding: ForwardingState | None = None
        self.default_password: bool | None = None
        self.packages: int | None = None

    def facts(self) -> OsFacts:
        return OsFacts(
            self.product,
            self.version,
            self.numeric_version,
            self.forwarding,
            self.default_password,
            self.packages,
        )

    async def receive(self, delivery: PaDelivery) -> Sequence[PaReply]:
        self.heard = True
        for attribute in delivery.message.attributes:
            if isinstance(attribute, ProductInformation):
                self.product = attribute.name
            elif isinstance(attribute, StringVersion):
                self.version = attribute.version
            elif isinstance(attribute, NumericVersion):
                self.numeric_version = (
                    attribute.major,
                    attribute.minor,
                    attribute.build,
                    attribute.service_pack_major,
                    attribute.service_pack_minor,
                )
            elif isinstance(attribute, ForwardingEnabled):
                self.forwarding = attribute.state
            elif isinstance(attribute, FactoryDefaultPasswordEnabled):
                self.default_password = attribute.enabled
            elif isinstance(attribute, InstalledPackages):
                self.packages = len(attribute.packages)
        if self._request_packages and not self._asked and self.packages is None:
            self._asked = True
            request = AttributeRequest((attribute_key(InstalledPackages),))
            return [PaReply(delivery, (request,))]
        return []

    async def evaluate(self) -> ImvEvaluation | None:
        if not self.heard:
            return None
        reasons: list[str] = []
        remediation: list[RemediationItem] = []
        verdict = Verdict.COMPLIANT
        if self.default_password:
            verdict = Verdict.MAJOR_NONCOMPLIANCE
            reasons.append("a factory default password is enabled")
            remediation.append(RemediationItem("Change the factory default password."))
        if self.forwarding is ForwardingState.ENABLED:
            if verdict is Verdict.COMPLIANT:
                verdict = Verdict.MINOR_NONCOMPLIANCE
            reasons.append("IP forwarding is enabled")
            remediation.append(
                RemediationItem("Turn IP forwarding off (Linux: sysctl net.ipv4.ip_forward=0).")
            )
        recommendation = (
            Recommendation.ALLOWED if verdict is Verdict.COMPLIANT else Recommendation.QUARANTINED
        )
        return ImvEvaluation(verdict, recommendation, tuple(reasons), tuple(remediation))

    async def close(self) -> None:
        pass
