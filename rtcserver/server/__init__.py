"""Layer 8, the server: what every connection of one process shares (`ServerState`:
settings, registry, live actors, counters, the cluster if any) and `/metrics`.

May import: every layer below, the cluster included.
"""
