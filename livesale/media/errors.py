"""Refusals specific to WHIP/WHEP, placed in the project's error tree.

::

    BadRequest        → BadOffer            400 bad-offer          (not an SDP offer we can read)
    Conflict          → NoPublisher         409 no-publisher       (nothing to play yet)
    Conflict          → ShowNotLive         409 show-not-live
    ValidationFailed  → UnsupportedCodec    422 unsupported-codec  (no VP8/H.264/Opus in common)
    Unavailable       → RelayClosed         503 relay-closed       (shutting down)
"""

from __future__ import annotations

from livesale import errors


class BadOffer(errors.BadRequest):
    slug, title = "bad-offer", "Not a usable SDP offer"


class NoPublisher(errors.Conflict):
    slug, title = "no-publisher", "The show has no publisher yet"


class ShowNotLive(errors.Conflict):
    slug, title = "show-not-live", "The show is not live"


class UnsupportedCodec(errors.ValidationFailed):
    slug, title = "unsupported-codec", "No codec in common with the relay"


class RelayClosed(errors.Unavailable):
    slug, title = "relay-closed", "The media relay is shutting down"
