"""`python -m benchmarks run [--quick]`; the single-scenario scripts stay runnable on their own
(`python -m benchmarks.skeleton`, `python -m benchmarks.vm_overhead`)."""

from __future__ import annotations

import sys

USAGE = "usage: python -m benchmarks run [--quick] [--out DIR] [--persons N,N,...]"


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "run":
        print(USAGE, file=sys.stderr)
        return 2
    from benchmarks.run import main as run

    return run(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
