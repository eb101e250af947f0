"""What the benches share: the (shared, 2-core) machine's load and their common flags."""

import argparse
import os
import time
from typing import List, Sequence


def load_average() -> List[float]:
    return list(os.getloadavg())


def wait_for_quiet(max_load: float, wait_s: float) -> bool:
    """Waits until the 1-minute load average is below ``max_load``; False on timeout."""
    deadline = time.monotonic() + wait_s
    while os.getloadavg()[0] >= max_load:
        if time.monotonic() >= deadline:
            return False
        time.sleep(10)
    return True


def add_quiet_arguments(parser: argparse.ArgumentParser) -> None:
    """--max_load / --wait_s, for ``wait_for_quiet``."""
    parser.add_argument("--max_load", type=float, default=2.5,
                        help="wait for the 1-minute load average to fall below this")
    parser.add_argument("--wait_s", type=float, default=600.0,
                        help="how long to wait for a quiet machine before running anyway")


def check_runs(parser: argparse.ArgumentParser, runs: int, flag: str = "--runs") -> None:
    if runs < 3:
        parser.error("%s must be at least 3 (the figures are medians)" % flag)


def parse_list(parser: argparse.ArgumentParser, value: str, choices: Sequence[str],
               what: str = "case") -> List[str]:
    """The comma-separated names in ``value``; a usage error names any not in ``choices``."""
    names = [n for n in value.split(",") if n]
    unknown = sorted(set(names) - set(choices))
    if unknown:
        parser.error("unknown %s(s) %s; choose from %s" % (what, unknown, ", ".join(choices)))
    return names
