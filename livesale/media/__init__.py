"""Media: WHIP ingest and WHEP playback, and the pass-through WebRTC relay between them.

This module is the media's surface: the app imports only the names below.
"""

from livesale.media.routes import MEDIA, Cors, routes, start

__all__ = ["MEDIA", "Cors", "routes", "start"]
