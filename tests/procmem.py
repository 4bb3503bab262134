"""The peak memory of a child process, its own: `PeakMemory`.

Why not ``ru_maxrss`` from ``wait4``/``RUSAGE_CHILDREN``: on Linux a child's ``ru_maxrss`` starts
from its parent's. ``exec`` records the high-water mark of the memory image it replaces, and
Python starts children with ``vfork``, so that image is the parent's: a daemon started by a
pytest process that had once used 231 MB reported 231 MB although the daemon itself never went
past 165 MB (tests/test_hostile.py builds a 50 MB feed before it starts the daemon; in a full
test run the pytest process has used more still). ``VmHWM`` in ``/proc/PID/status`` is the
high-water mark of the child's own memory image since its ``exec``; the kernel keeps it, so
sampling it now and then loses nothing but what happens after the last sample, and the last
sample is taken while the process exits.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path


def vm_hwm_kib(pid: int) -> int | None:
    """The process's peak resident set in KiB, or None once it has exited (or on non-Linux)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None  # a zombie has no memory image left


class PeakMemory:
    """Samples one process's ``VmHWM`` from a thread until ``stop``; ``peak_mb`` is the most seen.

    ``memory = PeakMemory(process.pid).start()``; once the process has exited, ``memory.stop()``
    and ``memory.peak_mb``.
    """

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def peak_mb(self) -> float:
        return self.peak_kib / 1024

    def start(self) -> PeakMemory:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sampling (after a last sample); call it once the process has exited or is about
        to: until then the process may still grow."""
        self._stop.set()
        self._thread.join()

    def _sample(self) -> bool:
        kib = vm_hwm_kib(self.pid)
        if kib is None:
            return False
        self.peak_kib = max(self.peak_kib, kib)
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._sample() and self.peak_kib:
                return  # exited
            time.sleep(self.interval)
        self._sample()
