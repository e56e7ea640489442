"""Running biasprobe's models elsewhere than the driver (Ray); see ``docs/ray.md``."""

from biasprobe.distributed.ray_engine import RayEngine, RayOptions, RayScorer

__all__ = ["RayEngine", "RayOptions", "RayScorer"]
