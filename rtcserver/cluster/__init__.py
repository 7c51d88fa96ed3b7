"""Layer 7, the cluster (`--redis URL`): many rtcserver nodes acting as one server.

May import: every layer below (`protocol` to `directory`). What it needs of the server
above it is `nodeview.Host`, and its parts see each other through `nodeview`'s
protocols, so inside, each file imports only files listed before it: errors, scripts,
mirror, nodeview, linkwire, inbound, links, bus, leader, names, node.

- `scripts`  the Lua scripts: atomic check-and-join, leases, reaping dead nodes.
- `mirror`   each node's view of its rooms (a `Registry` with remote members).
- `linkwire` the node-to-node links' framing and handshake (pure).
- `inbound`  the receiving end of links: handshake, frames in, acknowledgements.
- `links`    direct TCP links between nodes: the listener, one batched, acknowledged
             writer per destination node.
- `bus`      frames for other nodes (relays, membership news) on those links, and what
             a frame that cannot be delivered answers.
- `leader`   the one node's switchboard and name table: names, directory, calls.
- `names`    every node's side of them: requests to the leader, what it sends back,
             and the leader lock.
- `nodeview` the small protocols the parts need of their node and of the server.
- `node`     `Cluster`: the operations the handler awaits, and the background
             services (lease, subscriber, janitor, departures; the links) that run
             as permanent supervisor children.

Only `errors`, `scripts` and `mirror` (none needs coredis) are imported by the layers above
(the admin API, `server/clusteradmin.py`); the rest loads (with coredis) when a Redis
URL is configured. docs/CLUSTER.md describes the design and its failure behaviour.
"""
