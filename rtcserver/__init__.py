"""rtcserver: the WebRTC Blueprints signaling server, rebuilt as supervised actors on Trio."""

__version__ = "0.1.0"
