"""livesale: self-hosted live-stream shopping."""

__version__ = "0.1.0"
