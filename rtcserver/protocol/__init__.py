"""Layer 1, the protocol: the wire vocabulary (message classes, decode/encode, codes).

May import: nothing else of rtcserver (pure and synchronous), so every layer may use it.
`from rtcserver import protocol` gives the whole vocabulary; the files split it in two.
"""

from .codes import *  # noqa: F403
from .messages import *  # noqa: F403
