"""dspy-turbo ``ray`` batch strategy: a batch's misses on a Ray cluster (see ``strategy``)."""

from .strategy import RayOptions, RaySettings, RayStrategy
from .wire import RemoteItemError

__all__ = ["RayOptions", "RaySettings", "RayStrategy", "RemoteItemError"]
