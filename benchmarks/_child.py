"""One measurement in a fresh process: ``python -m benchmarks._child KIND NAME N [EXTRA]``.

``EXTRA`` is the workers of a timeout scenario, the finished tasks of a backlog row.

The suite runs every measurement this way, so no run inherits another's heap,
garbage or imports. It prints one JSON object on stdout.
"""

from __future__ import annotations

import json
import os
import sys


def measure(kind: str, name: str, n: int, extra: int) -> dict[str, object]:
    """Run one measurement and return it as a JSON-ready dict."""
    if kind == "throughput":
        from . import _variants

        seconds, collected = getattr(_variants, name)(n)
        return {"seconds": seconds, "collected": collected}
    if kind == "memory":
        from . import _memory

        peak_kib, collected = getattr(_memory, name)(n)
        return {"peak_rss_kib": peak_kib, "collected": collected}
    if kind == "objects":
        from . import _memory

        objects: dict[str, object] = getattr(_memory, name)(n)
        return objects
    if kind == "timeouts":
        from . import _timeouts

        seconds, collected, lateness = getattr(_timeouts, name)(n, extra)
        return {"seconds": seconds, "collected": collected, "lateness": lateness}
    if kind == "stores":
        from . import _stores

        result: dict[str, object] = getattr(_stores, name)(n)
        return result
    if kind == "backlog":
        from . import _stores

        backlog: dict[str, object] = getattr(_stores, name)(n, extra)
        return backlog
    raise ValueError(f"unknown measurement kind {kind!r}")


def main(argv: list[str]) -> None:
    kind, name, n = argv[0], argv[1], int(argv[2])
    extra = int(argv[3]) if len(argv) > 3 else 0
    json.dump(measure(kind, name, n, extra), sys.stdout)
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip the interpreter's teardown: freeing a million objects one by one
    # takes a second and measures nothing.
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
