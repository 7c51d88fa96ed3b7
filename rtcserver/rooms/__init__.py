"""Layer 5, rooms: the book's core. The registry (gproc's part: rooms, members, names,
every registration scoped to its actor), what a member is (`Peer`), and sessions that
outlive a socket. Pure and synchronous.

May import: `protocol`, `settings`, `wire`, `actors`, `security`.
"""
