"""The coordinator contract: leases, token buckets and shared logs across processes.

A backend shared by several processes (Redis) may offer ``coordinator()`` returning a
:class:`Coordinator`; the first tier that offers one coordinates single-flight, rate limits
and the shared logs (invalidation, the semantic index) of every process using the
namespace. Without one, the host uses :class:`LocalCoordinator` (this process only).
A coordinator that fails raises; callers treat that as "no coordination", never as an
error in the user's program. ``dspy_turbo.testing.CoordinatorSuite`` checks every rule.
"""

from __future__ import annotations

from ..coordination.coordinator import CoordinationUnavailable, Coordinator, LocalCoordinator
from ..coordination.shared_log import SharedLog, supports_logs

__all__ = ["CoordinationUnavailable", "Coordinator", "LocalCoordinator", "SharedLog", "supports_logs"]
