"""dspy-turbo-redis: the ``redis`` cache tier and the coordinator it offers."""

from .backend import RedisBackend, RedisOptions
from .coordinator import RedisCoordinator

__all__ = ["RedisBackend", "RedisCoordinator", "RedisOptions"]
