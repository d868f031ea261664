"""The room: the WebSocket hub of a show (chat, hearts, requests, plants, presence, the sale's
events), with viewer sign-up.

This module is the room's surface: the app imports only the names below.
"""

from livesale.room.hub import ROOM, Hub, start
from livesale.room.routes import routes, socket_route

__all__ = ["ROOM", "Hub", "routes", "socket_route", "start"]
