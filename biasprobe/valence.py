"""Moved to :mod:`biasprobe.measures.valence` (valence is a registered measure now); this
module re-exports it for existing callers."""

from biasprobe.measures.valence import *  # noqa: F403
from biasprobe.measures.valence import __all__  # noqa: F401
