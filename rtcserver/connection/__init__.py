"""Layer 9, the connection: one client from accept to close. The front door (route a
request: upgrade, page, health, metrics), then the actor's life named like Cowboy's
callbacks: `lifecycle` (init, handle), `dispatch`, `writer` (info), `terminate`, and
`resume` for sessions that outlive a socket.

May import: every layer below. Only the top (`app`) imports it.
"""
