"""DHCPv4 and ARP frames seen on an access segment, turned into endpoint Observations."""

from netaccess.proto.detect.dissector import dissect
from netaccess.proto.detect.observation import (
    DhcpMessageType,
    MalformedFrame,
    Observation,
    ObservationSource,
)

__all__ = ["DhcpMessageType", "MalformedFrame", "Observation", "ObservationSource", "dissect"]
