// The room WebSocket and the state both pages draw from it.
//
// A Room owns the socket: it connects with the token, reconnects with backoff, keeps the last
// sequence number and asks for a fresh snapshot on a gap, and reduces every frame into
// `room.state` (the show, the line-up with stock, the featured item, the request queue, chat,
// viewers, slow mode). Each page passes `on`, a handler per message type it draws, called after
// the frame is applied, and `onRefused` for a socket the server will not open.
//
// A socket without a token watches (the server's "watcher"): it is sent everything and may
// send hearts; the page opens it again with a token before anything else.
//
// Sequenced events (show, lineup, featured, requests, chat, chat_deleted, slow_mode) each carry
// the next number; every other frame carries the last number seen before it. A frame whose seq
// is ahead of what this client has seen means an event was missed.

const SEQUENCED = new Set([
  "show", "lineup", "featured", "requests", "chat", "chat_deleted", "slow_mode",
]);
// Error codes of a request turned down for now; a snapshot asked for is asked for again later.
const THROTTLED = new Set(["rate_limited", "too_fast"]);
const RESYNC_AGAIN_MS = 2500;

// Close codes of a refused socket, as `livesale/room/ws.py` documents them. Reconnecting with
// the same token cannot help after these; after any other code (1008 for malformed messages,
// 1013 for a slow reader, 1006 for a network failure) the room reconnects keeping the token.
export const CLOSE_BAD_TOKEN = 4403;
export const CLOSE_NO_SHOW = 4404;
export const CLOSE_BANNED = 4410;
const REFUSED = new Set([CLOSE_BAD_TOKEN, CLOSE_NO_SHOW, CLOSE_BANNED]);

export class Room {
  // `on`: {type: (msg, state) => ...} for the types the page draws; `chatLimit`: chat lines
  // kept; `onRefused(code)`: the server refused the token or the show (see above).
  constructor(showId, { on = {}, chatLimit = 200, onRefused = () => {} } = {}) {
    this.showId = showId;
    this.on = on;
    this.chatLimit = chatLimit;
    this.onRefused = onRefused;
    this.token = "";
    this.state = {
      you: null,
      show: null,
      items: new Map(), // sku -> line-up item (with .available)
      order: [], // skus in show order
      featured: null,
      requests: [], // the ranked queue, [{sku, votes}]
      chat: [],
      viewers: 0,
      slowMode: 0,
    };
    this.seq = -1;
    this.socket = null;
    this.closed = false;
    this.retry = 0;
    this.resyncing = false;
    this.waiting = []; // resolvers of `snapshotted()`
  }

  // Open the socket with `token` ("" to watch without a nickname), or open it again with a new
  // token: after a refusal, or once a watcher has chosen a nickname.
  connect(token) {
    this.token = token;
    this.closed = false;
    const old = this.socket;
    this.socket = null;
    if (old) old.close(1000);
    this.open();
  }

  // Resolves at the next snapshot: the socket is open and the state is current.
  snapshotted() {
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  open() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const url = `${scheme}://${location.host}/ws/shows/${encodeURIComponent(this.showId)}` +
      `?token=${encodeURIComponent(this.token)}`;
    const socket = new WebSocket(url);
    this.socket = socket;
    socket.addEventListener("message", (event) => this.receive(event.data));
    socket.addEventListener("close", (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (this.closed) return;
      if (REFUSED.has(event.code)) {
        this.retry = 0;
        this.onRefused(event.code);
        return;
      }
      const delay = Math.min(10000, 500 * 2 ** this.retry++) * (0.5 + Math.random() / 2);
      setTimeout(() => this.closed || this.socket || this.open(), delay);
    });
  }

  receive(data) {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      console.warn("room: undecodable frame", data);
      return;
    }
    if (msg.type === "error" && this.resyncing && THROTTLED.has(msg.code)) {
      this.resyncing = false;
      setTimeout(() => this.resync(), RESYNC_AGAIN_MS);
    }
    if (msg.type === "snapshot") {
      this.seq = msg.seq;
      this.retry = 0;
      this.resyncing = false;
      queueMicrotask(() => this.waiting.splice(0).forEach((resolve) => resolve(msg)));
    } else if (typeof msg.seq === "number" && this.seq >= 0) {
      const expected = SEQUENCED.has(msg.type) ? this.seq + 1 : this.seq;
      if (msg.seq > expected) {
        this.resync();
        return;
      }
      if (SEQUENCED.has(msg.type)) {
        if (msg.seq < expected) return; // already reflected in the snapshot
        this.seq = msg.seq;
      }
    }
    this.apply(msg);
  }

  // The one switch on the type of this socket's frames: the shared state first, then the
  // page's handler. Types only one page draws (hearts, plants, holds, ...) change no shared
  // state; they are listed so that a type the protocol does not have is reported.
  apply(msg) {
    const state = this.state;
    switch (msg.type) {
      case "snapshot":
        state.you = msg.you;
        state.show = msg.show;
        state.featured = msg.featured;
        state.requests = msg.requests;
        state.chat = msg.chat;
        state.viewers = msg.viewers;
        state.slowMode = msg.slow_mode;
        setLineup(state, msg.lineup);
        break;
      case "show":
        // An ended show never comes back; only whether its replay sells may still change.
        if (state.show?.state === "ended" && msg.state !== "ended") return;
        state.show = {
          ...state.show, state: msg.state, paused: msg.paused,
          sales_close_at: msg.sales_close_at ?? null,
          replay_sales: msg.replay_sales ?? state.show?.replay_sales ?? false,
        };
        if (msg.state === "ended" && !state.show.ended_at) state.show.ended_at = Date.now() / 1000;
        break;
      case "lineup":
        setLineup(state, msg.lineup);
        break;
      case "featured":
        state.featured = msg.sku;
        break;
      case "requests":
        state.requests = msg.queue;
        break;
      case "stock":
        for (const { sku, available } of msg.items) {
          const item = state.items.get(sku);
          if (item) item.available = available;
        }
        break;
      case "chat":
        state.chat.push(msg);
        if (state.chat.length > this.chatLimit) {
          state.chat.splice(0, state.chat.length - this.chatLimit);
        }
        break;
      case "chat_deleted":
        state.chat = state.chat.filter((line) => line.id !== msg.id);
        break;
      case "presence":
        state.viewers = msg.viewers;
        break;
      case "slow_mode":
        state.slowMode = msg.seconds;
        break;
      case "sale":
      case "hearts":
      case "plants":
      case "planted":
      case "muted":
      case "hold":
      case "order":
      case "parcel":
      case "notifying":
      case "back_in_stock":
      case "error":
        break;
      default:
        console.warn("room: unknown message type", msg.type);
        return;
    }
    const handler = this.on[msg.type];
    if (handler) handler(msg, state);
  }

  resync() {
    if (this.resyncing) return;
    this.resyncing = true;
    this.send({ type: "snapshot" });
  }

  send(msg) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify(msg));
      return true;
    }
    return false;
  }

  close() {
    this.closed = true;
    if (this.socket) this.socket.close(1000);
  }
}

function setLineup(state, lineup) {
  state.items = new Map(lineup.items.map((item) => [item.sku, item]));
  state.order = lineup.items.map((item) => item.sku);
}
