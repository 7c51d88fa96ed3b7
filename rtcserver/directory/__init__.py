"""Layer 6, the directory: calls by name. The switchboard (a pure state machine for
calls), presence (who is online, coalesced per subscriber), and the shell that carries
out their decisions for an actor (`phone`: login, logout, call messages, ring timer).

May import: every layer below (`protocol`, `settings`, `wire`, `actors`, `security`,
`rooms`). The cluster's name service reaches it through `phone.NameService`.
"""
