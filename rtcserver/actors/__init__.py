"""Layer 3, the actors: what Erlang's runtime gives the book's server. An actor's
address (a byte-bounded mailbox, a non-blocking `tell`, `kick`), the server-wide queue
budget, the keepalive sweeper, and the supervisor that contains crashes.

May import: `protocol`, `settings`, `wire`.
"""
