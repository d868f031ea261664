"""Refusals specific to WHIP/WHEP, placed in the project's error tree.

::

    BadRequest        → BadOffer            400 bad-offer          (not an SDP offer we can read)
    Conflict          → NoPublisher         409 no-publisher       (nothing to play yet)
    Conflict          → ShowNotLive         409 show-not-live
    ValidationFailed  → UnsupportedCodec    422 unsupported-codec  (no VP8/H.264/Opus in common)
    TooManyRequests   → TooManyViewers      429 too-many-viewers   (per client address)
    Unavailable       → RelayClosed         503 relay-closed       (shutting down)

The ``409``s of a show that is not playing yet carry ``Retry-After`` (draft-ietf-wish-whep
§4.1: the player may try again once the stream is live).
"""

from __future__ import annotations

from livesale import errors


class BadOffer(errors.BadRequest):
    slug, title = "bad-offer", "Not a usable SDP offer"


#: Seconds a player waits before offering again to a show that is not playing yet.
NOT_LIVE_RETRY_AFTER = 5


class NoPublisher(errors.Conflict):
    slug, title = "no-publisher", "The show has no publisher yet"
    retry_after = NOT_LIVE_RETRY_AFTER


class ShowNotLive(errors.Conflict):
    slug, title = "show-not-live", "The show is not live"
    retry_after = NOT_LIVE_RETRY_AFTER


class TooManyViewers(errors.TooManyRequests):
    slug, title = "too-many-viewers", "Too many players from this address"


class UnsupportedCodec(errors.ValidationFailed):
    slug, title = "unsupported-codec", "No codec in common with the relay"


class WebRtcFull(errors.Unavailable):
    slug, title = "webrtc-full", "This server relays no more WebRTC players"


class RelayClosed(errors.Unavailable):
    slug, title = "relay-closed", "The media relay is shutting down"
