"""The daemon's live inventory over a real SQLite store in a temp dir."""

from __future__ import annotations

from pathlib import Path

from netaccess.io.inventory import Inventory
from netaccess.policy.endpoint import EndpointEvent, EndpointState, EventKind
from netaccess.proto.detect import DhcpMessageType, Observation, ObservationSource
from netaccess.store import Store

A = "02:4e:41:00:00:01"
B = "02:4e:41:00:00:02"


def ack(mac: str, ip: str, at: float) -> Observation:
    return Observation(
        ObservationSource.DHCP, mac, at, ip=ip, dhcp_type=DhcpMessageType.ACK, from_client=False
    )


def arp(mac: str, ip: str, at: float) -> Observation:
    return Observation(ObservationSource.ARP, mac, at, ip=ip)


async def test_observations_reach_the_store_on_flush(tmp_path: Path) -> None:
    with Store.open(tmp_path / "db") as store:
        inv = Inventory(store, [])
        inv.observe([ack(A, "198.18.0.10", 1.0)])
        assert inv.get(A) is not None
        assert await inv.flush()
        saved = store.get_endpoint(A)
        assert saved is not None and saved.ips == ("198.18.0.10",)


async def test_an_ip_that_moves_to_another_mac_leaves_its_old_owner(tmp_path: Path) -> None:
    with Store.open(tmp_path / "db") as store:
        inv = Inventory(store, [])
        inv.observe([ack(A, "198.18.0.10", 1.0), arp(B, "198.18.0.10", 2.0)])
        await inv.flush()
        assert inv.get(A).ips == ()  # type: ignore[union-attr]
        assert inv.get(B).ips == ("198.18.0.10",)  # type: ignore[union-attr]
        assert store.owner_of_ip("198.18.0.10") == B


async def test_the_appliances_own_macs_are_not_endpoints(tmp_path: Path) -> None:
    with Store.open(tmp_path / "db") as store:
        inv = Inventory(store, [], own_macs=[A])
        inv.observe([arp(A, "198.18.0.1", 1.0)])
        assert len(inv) == 0


async def test_many_frames_for_one_mac_are_one_pending_write(tmp_path: Path) -> None:
    with Store.open(tmp_path / "db") as store:
        inv = Inventory(store, [])
        inv.observe([arp(A, f"198.18.0.{i}", float(i)) for i in range(10, 60)])
        assert inv.pending_writes == 1
        await inv.flush()
        assert len(store.get_endpoint(A).ips) == 50  # type: ignore[union-attr]


async def test_a_recorded_event_is_kept_for_a_known_endpoint_only(tmp_path: Path) -> None:
    """record(): the event joins the endpoint's history unchanged otherwise; for an
    unknown MAC it is refused and nothing is written."""
    with Store.open(tmp_path / "db") as store:
        inv = Inventory(store, [])
        inv.observe([ack(A, "198.18.0.10", 1.0)])
        await inv.flush()
        before = inv.get(A)
        coa = EndpointEvent(5.0, A, EventKind.COA, {"nas": "sw", "outcome": "done"})
        assert inv.record(coa)
        assert not inv.record(EndpointEvent(5.0, B, EventKind.COA, {"outcome": "done"}))
        assert inv.pending_writes == 1
        assert await inv.flush()
        assert inv.get(A) == before
        assert store.get_endpoint(A) == before
        kept = [e for e in store.events() if e.kind is EventKind.COA]
        assert [(e.mac, e.at, e.detail) for e in kept] == [
            (A, 5.0, {"nas": "sw", "outcome": "done"})
        ]


async def test_a_reloaded_inventory_has_what_was_flushed(tmp_path: Path) -> None:
    with Store.open(tmp_path / "db") as store:
        inv = Inventory(store, [])
        inv.observe([ack(A, "198.18.0.10", 1.0)])
        inv.observe(
            [
                Observation(
                    ObservationSource.DHCP,
                    A,
                    2.0,
                    ip="198.18.0.10",
                    dhcp_type=DhcpMessageType.RELEASE,
                )
            ]
        )
        await inv.flush()
    with Store.open(tmp_path / "db") as store:
        again = Inventory(store, store.load_endpoints())
        ep = again.get(A)
        assert ep is not None and ep.state is EndpointState.GONE and ep.ips == ()


async def test_a_servers_offer_for_an_unknown_mac_creates_no_endpoint(tmp_path: Path) -> None:
    with Store.open(tmp_path / "db") as store:
        inv = Inventory(store, [])
        offer = Observation(
            ObservationSource.DHCP, A, 1.0, dhcp_type=DhcpMessageType.OFFER, from_client=False
        )
        inv.observe([offer])
        assert len(inv) == 0


async def test_a_servers_ack_for_an_unknown_mac_creates_the_endpoint(tmp_path: Path) -> None:
    with Store.open(tmp_path / "db") as store:
        inv = Inventory(store, [])
        inv.observe([ack(A, "198.18.0.10", 1.0)])
        assert inv.get(A) is not None


async def test_past_max_endpoints_new_macs_are_refused_and_counted_but_known_ones_update(
    tmp_path: Path,
) -> None:
    with Store.open(tmp_path / "db") as store:
        inv = Inventory(store, [], max_endpoints=1)
        inv.observe(
            [arp(A, "198.18.0.10", 1.0), arp(B, "198.18.0.11", 2.0), arp(A, "198.18.0.12", 3.0)]
        )
        assert len(inv) == 1
        assert inv.refused == 1
        assert inv.get(A).ips == ("198.18.0.10", "198.18.0.12")  # type: ignore[union-attr]
