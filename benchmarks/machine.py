"""What the benchmark scripts record about the machine they ran on, with the standard library
only: ``benchmarks/first_run.py`` runs before any set-up, with a Python that has no torch.
``python benchmarks/machine.py`` prints them.

Example::

    >>> from machine import cpu_model
    >>> isinstance(cpu_model(), str)
    True
"""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv=None) -> int:
    """``python benchmarks/machine.py``: print what the scripts record about this machine."""
    import argparse
    import os

    argparse.ArgumentParser(description="Print the CPU model and the CPU count the benchmark scripts record.").parse_args(argv)
    print(f"{cpu_model()}, {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
