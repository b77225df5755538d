"""A fault-injection hook for crash tests: stop at a named point so a test can ``kill -9`` there.

Set ``SPARSEGRAD_PAUSE_AT=<kind>:<n>`` and ``SPARSEGRAD_PAUSED=<file>``: the ``n``-th time this
process reaches a point of that kind (``step``: after an optimizer step; ``save``: inside the
atomic write of a checkpoint, the state file written to its temporary name but not yet renamed)
it creates ``<file>`` and sleeps until killed. Without the variables it does nothing.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

_reached: Counter[str] = Counter()


def pause_point(kind: str) -> None:
    """Sleeps forever here if ``$SPARSEGRAD_PAUSE_AT`` names this occurrence of ``kind``."""
    wanted = os.environ.get("SPARSEGRAD_PAUSE_AT")
    if not wanted:
        return
    _reached[kind] += 1
    if wanted == f"{kind}:{_reached[kind]}":
        Path(os.environ["SPARSEGRAD_PAUSED"]).touch()
        while True:
            time.sleep(1)
