"""Media: WHIP ingest and WHEP playback, the pass-through WebRTC relay between them, and the
recordings served as HLS.

This module is the media's surface: the app imports only the names below.
"""

from starlette.routing import BaseRoute

from livesale.media import archive, hls
from livesale.media.routes import MEDIA, Cors, start
from livesale.media.routes import routes as _signalling

#: WHIP/WHEP, then the recordings' HLS and the merchant's view of them.
routes: list[BaseRoute] = [*_signalling, *hls.routes, *archive.routes]

__all__ = ["MEDIA", "Cors", "routes", "start"]
