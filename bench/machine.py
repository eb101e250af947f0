"""What the benches need to know about the (shared, 2-core) machine: its load."""

import os
import time
from typing import List


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
