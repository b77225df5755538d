"""The tonic bugs sparsegrad works around, each named with its upstream issue and guarded by
the tonic version: the workaround runs on the releases known to have the bug, tonic's own
function on later ones. tests/test_data_neuromorphic.py checks, on the installed tonic, that
a guarded bug is still there (else the guard can go) or that tonic's own function now agrees
with the workaround.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import tonic

__all__ = ["AEDAT_HEADER_UNPACK", "NCALTECH101_INNER_ZIP", "TONIC_VERSION", "TonicBug"]


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


TONIC_VERSION = _release(tonic.__version__)


@dataclass(frozen=True)
class TonicBug:
    """A tonic bug with a workaround here.

    Attributes:
        what: the bug, in a sentence.
        issue: the upstream issue, or a note that none was found.
        last_affected: the newest tonic release known to have it.
    """

    what: str
    issue: str
    last_affected: str

    @property
    def present(self) -> bool:
        """The installed tonic is one of the releases known to have the bug."""
        return TONIC_VERSION <= _release(self.last_affected)


AEDAT_HEADER_UNPACK = TonicBug(
    "io.read_dvs_128 / read_dvs_ibm unpack two values from read_aedat_header_from_file, which "
    "returns three, so they always fail",
    "https://github.com/neuromorphs/tonic/issues/302",
    "1.7.0",
)
NCALTECH101_INNER_ZIP = TonicBug(
    "datasets.NCALTECH101 downloads and extracts the outer archive but never the inner "
    "Caltech101.zip it names (data_filename), leaving an empty dataset",
    "none found upstream (searched the tonic issues in 2026)",
    "1.7.0",
)
