"""A worker thread for enforce's Beside: the enforcer commits a burst's nf_tables transaction
on it while its own thread deletes the burst's conntrack entries (ConntrackFlusher.
flush_alongside). Both wait in the kernel with the GIL released, so two cores do the work."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from netaccess.enforce.conntrack import Beside


def worker_thread(name: str = "netaccess-beside") -> tuple[Beside, Callable[[], None]]:
    """(a Beside running each piece of work on one long-lived thread, a function that stops
    the thread). One thread, started on first use: work never overlaps other work of it."""
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    def beside(work: Callable[[], None]) -> Callable[[], object]:
        return executor.submit(work).result

    return beside, executor.shutdown
