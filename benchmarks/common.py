"""What the benchmark scripts share: the memory readers.

The scripts run as `python benchmarks/<name>.py`, which puts benchmarks/ first on `sys.path`, so
each imports this module as `from common import ...`, with no `sys.path.insert`.
Only the standard library is imported here at module level: the speed and memory scripts import
this module before they set their thread count and before torch (their baseline RSS stays
theirs), and peers.py runs in the peers' own venv.
"""

from __future__ import annotations


# ------------------------------------------------------------------------------ memory
def _status_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def rss_mb() -> float:
    """The process's resident memory now, in MB."""
    return _status_mb("VmRSS")


def peak_rss_mb() -> float:
    """The process's peak resident memory, in MB.

    `VmHWM`, not `ru_maxrss`: Linux carries `ru_maxrss` across `exec`, so a subprocess started by
    a large parent would report the parent's size as its own peak.
    """
    return _status_mb("VmHWM")
