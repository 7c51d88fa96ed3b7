"""Layer 2, the wire: what moves bytes. The WebSocket engine (websockets' sans-I/O core
in a lean Trio loop), HTTP/1.1 heads and responses, static files, log-safe text.

May import: `protocol`, `settings`. Knows nothing of actors, rooms or the server.
"""
