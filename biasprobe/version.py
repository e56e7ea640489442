"""biasprobe's version (layer 0: every module may import it from here)."""

__version__ = "0.1.0"
