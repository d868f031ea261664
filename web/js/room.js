// The room WebSocket: reconnects with backoff, and asks for a fresh snapshot on a sequence gap.
//
// Sequenced events (show, lineup, featured, requests, chat, chat_deleted, slow_mode) each carry
// the next number; every other frame carries the last number seen before it. A frame whose seq
// is ahead of what this client has seen means an event was missed.

const SEQUENCED = new Set([
  "show", "lineup", "featured", "requests", "chat", "chat_deleted", "slow_mode",
]);

export class Room {
  constructor(showId, token, { onMessage, onStatus }) {
    this.showId = showId;
    this.token = token;
    this.onMessage = onMessage;
    this.onStatus = onStatus || (() => {});
    this.seq = -1;
    this.socket = null;
    this.closed = false;
    this.retry = 0;
    this.resyncing = false;
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const url = `${scheme}://${location.host}/ws/shows/${encodeURIComponent(this.showId)}` +
      `?token=${encodeURIComponent(this.token)}`;
    const socket = new WebSocket(url);
    this.socket = socket;
    this.onStatus("connecting");
    socket.addEventListener("message", (event) => this.receive(event.data));
    socket.addEventListener("close", (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (this.closed) return;
      this.onStatus("reconnecting", event.code);
      const delay = Math.min(10000, 500 * 2 ** this.retry++) * (0.5 + Math.random() / 2);
      setTimeout(() => this.closed || this.connect(), delay);
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
    if (msg.type === "snapshot") {
      this.seq = msg.seq;
      this.retry = 0;
      this.resyncing = false;
      this.onStatus("live");
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
    this.onMessage(msg);
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
