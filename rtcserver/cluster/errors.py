"""The one failure cluster operations raise (importable without the Redis client)."""

from __future__ import annotations


class ClusterUnavailable(Exception):
    """Redis could not be reached in time, or this node holds no lease right now.
    The message says which; the client gets it as ERROR `cluster-unavailable`."""
