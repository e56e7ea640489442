"""Running biasprobe's models elsewhere (Ray); see :mod:`biasprobe.distributed.ray_engine`."""

from biasprobe.distributed.ray_engine import RayCalls, RayEngine, RayError, RayOptions

__all__ = ["RayCalls", "RayEngine", "RayError", "RayOptions"]
