"""RFC 5080 duplicate detection: a retransmit gets the cached reply, one arriving while the
first is processed is dropped, entries expire and the cache stays bounded."""

from __future__ import annotations

from netaccess.proto.radius.dedup import DuplicateCache, Seen

KEY = ("192.0.2.10", 50000, 1, 7, bytes(16))


def test_a_retransmit_gets_the_reply_already_sent() -> None:
    cache = DuplicateCache(lifetime=5.0)
    assert cache.arrive(KEY, 0.0).seen is Seen.NEW
    cache.answer(KEY, b"reply", 0.1)
    again = cache.arrive(KEY, 1.0)
    assert (again.seen, again.reply) == (Seen.ANSWERED, b"reply")
    assert cache.duplicates == 1


def test_a_retransmit_while_processing_is_dropped() -> None:
    cache = DuplicateCache()
    cache.arrive(KEY, 0.0)
    assert cache.arrive(KEY, 0.5).seen is Seen.IN_PROGRESS


def test_another_authenticator_or_port_is_a_new_request() -> None:
    cache = DuplicateCache()
    cache.arrive(KEY, 0.0)
    cache.answer(KEY, b"r", 0.0)
    assert cache.arrive((*KEY[:4], b"\x01" * 16), 0.1).seen is Seen.NEW
    assert cache.arrive((KEY[0], 50001, *KEY[2:]), 0.1).seen is Seen.NEW


def test_entries_expire_after_their_lifetime() -> None:
    cache = DuplicateCache(lifetime=5.0)
    cache.arrive(KEY, 0.0)
    cache.answer(KEY, b"r", 1.0)
    assert cache.arrive(KEY, 5.9).seen is Seen.ANSWERED
    assert cache.arrive(KEY, 6.1).seen is Seen.NEW


def test_an_unanswered_request_stops_blocking_after_its_time() -> None:
    cache = DuplicateCache(in_progress=2.0)
    cache.arrive(KEY, 0.0)
    assert cache.arrive(KEY, 2.5).seen is Seen.NEW


def test_a_forgotten_request_is_processed_again() -> None:
    cache = DuplicateCache()
    cache.arrive(KEY, 0.0)
    cache.forget(KEY)
    assert cache.arrive(KEY, 0.1).seen is Seen.NEW


def test_the_cache_is_bounded() -> None:
    cache = DuplicateCache(capacity=100)
    for n in range(1000):
        cache.arrive(("192.0.2.1", n, 1, n % 256, bytes(16)), 0.0)
        assert len(cache) <= 100
    assert len(cache) >= 50  # the newest half at least: a flood pushes out the oldest


OTHER = ("192.0.2.11", 50000, 1, 7, bytes(16))


def test_a_request_in_progress_outlives_generation_turns() -> None:
    # A slow password check: its generation turns over twice (other traffic at 6 and 12 s)
    # before a retransmit at 13 s, which must still be seen as in progress.
    cache = DuplicateCache(lifetime=5.0, in_progress=30.0)
    cache.arrive(KEY, 0.0)
    for at in (6.0, 12.0):
        cache.arrive((*OTHER[:3], int(at), bytes(16)), at)
    assert cache.arrive(KEY, 13.0).seen is Seen.IN_PROGRESS
    assert cache.arrive(KEY, 31.0).seen is Seen.NEW  # but not past its own time


def test_a_reply_given_after_a_turn_lives_its_whole_lifetime() -> None:
    cache = DuplicateCache(lifetime=5.0, in_progress=30.0)
    cache.arrive(KEY, 0.0)
    cache.arrive(OTHER, 5.5)  # KEY's generation is now the previous one
    cache.answer(KEY, b"late", 6.0)
    cache.arrive((*OTHER[:3], 8, bytes(16)), 10.6)  # another turn: the old previous goes
    again = cache.arrive(KEY, 10.9)
    assert (again.seen, again.reply) == (Seen.ANSWERED, b"late")
    assert cache.arrive(KEY, 11.1).seen is Seen.NEW


def test_a_clock_stepping_back_keeps_the_cache_working() -> None:
    cache = DuplicateCache(lifetime=5.0)
    cache.arrive(KEY, 1000.0)
    cache.answer(KEY, b"r", 1000.0)
    assert cache.arrive(OTHER, 10.0).seen is Seen.NEW  # the clock went back 990 s
    cache.answer(OTHER, b"o", 10.0)
    again = cache.arrive(OTHER, 11.0)
    assert (again.seen, again.reply) == (Seen.ANSWERED, b"o")
