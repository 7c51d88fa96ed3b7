"""rtcserver's benchmark: a multi-process WebSocket load generator and its report.

Run it as ``python tools/bench --help``. It measures a running deployment (``--url``)
or starts a local rtcserver, and the Node baseline relay in ``tools/baseline`` beside
it, and reports every figure for both with their ratio. It uses only the standard
library; matplotlib is optional and only draws ``--plot``.
"""
