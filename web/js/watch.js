// The viewer page: video over WHEP, the room, the line-up strip, buying with a hold countdown.

import {
  api, ApiError, el, errorText, money, newKey, showIdFromPath, toast, VIEWER_KEY,
} from "./api.js";
import { PaymentChoice, testModeBanner } from "./payments.js";
import { CLOSE_BAD_TOKEN, CLOSE_BANNED, CLOSE_NO_SHOW, Room } from "./room.js";
import { play } from "./webrtc.js";

const showId = showIdFromPath();
const $ = (id) => document.getElementById(id);
const SHIPPING_KEY = "livesale.shipping";

// The room's socket and the state it shares with the studio (show, line-up, featured, chat);
// the handlers and `onRefused` are below, under "the room".
const room = new Room(showId, { on: roomHandlers(), chatLimit: 200, onRefused });
const shared = room.state;

// What only this page keeps.
const state = {
  viewer: null,
  requested: new Set(),
  planted: new Set(),
  notifying: new Set(), // sold-out SKUs this viewer waits for
  holds: new Map(), // hold_id -> hold
  mutedUntil: 0,
  hold: null, // the hold being checked out
  orders: new Map(), // order id -> {state, returned, refunded}: what this page last saw of it
  clockSkew: 0, // server time - local time, ms
};

// --- the viewer ------------------------------------------------------------------------------

async function ensureViewer() {
  try {
    const saved = JSON.parse(localStorage.getItem(VIEWER_KEY) || "null");
    if (saved && saved.token) return saved;
  } catch {
    // a broken entry is replaced below
  }
  const dialog = $("nickname-dialog");
  const form = $("nickname-form");
  const error = form.querySelector(".form-error");
  dialog.showModal();
  // Asked again after a refused token: this call's listener is the only one on the form.
  const listening = new AbortController();
  return new Promise((resolve) => {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.textContent = "";
      try {
        const viewer = await api("POST", "/api/viewers", {
          body: { nickname: $("nickname-input").value },
        });
        localStorage.setItem(VIEWER_KEY, JSON.stringify(viewer));
        listening.abort();
        dialog.close();
        resolve(viewer);
      } catch (err) {
        error.textContent = errorText(err);
      }
    }, { signal: listening.signal });
  });
}

// --- show state and video --------------------------------------------------------------------

function renderShow() {
  const show = shared.show;
  if (!show) return;
  $("title").textContent = show.title;
  document.title = `${show.title} — livesale`;
  const badge = $("state");
  const label = show.state === "live" ? (show.paused ? "Paused" : "Live")
    : show.state === "scheduled" ? "Upcoming" : "Ended";
  badge.textContent = label;
  badge.className = `badge ${show.state === "live" && show.paused ? "paused" : show.state}`;
  const status = $("video-status");
  if (show.state === "scheduled") {
    status.textContent = "The show hasn't started yet — stay tuned.";
  } else if (show.state === "ended") {
    status.textContent = "This show has ended. Thanks for watching!";
  } else if (show.paused) {
    status.textContent = "The host is reconnecting…";
  } else {
    status.textContent = "";
  }
  status.hidden = !status.textContent;
  const ended = show.state === "ended";
  document.body.classList.toggle("ended", ended);
  // After the end the chat is read-only.
  $("chat-input").disabled = ended;
  $("chat-input").placeholder = ended ? "The show has ended — chat is closed" : "Say something…";
  for (const button of $("chat-form").querySelectorAll("button")) button.disabled = ended;
  if (ended) showMyOrders();
}

// After the end: what this viewer bought in the show, with a link to all their orders.
let summaryShown = false;
async function showMyOrders() {
  if (summaryShown || !state.viewer) return;
  summaryShown = true;
  const box = $("my-show-orders");
  try {
    const mine = (await api("GET", "/api/me/orders", { token: state.viewer.token }))
      .filter((o) => o.show_id === showId && ["confirmed", "refunded"].includes(o.state));
    box.replaceChildren(
      el("h2", {}, "Your orders from this show"),
      mine.length
        ? el("ul", {}, ...mine.map((o) => el("li", {}, `${o.qty} × ${o.title} · ${money(o.total)}`)))
        : el("p", {}, "You did not buy anything in this show."),
      el("a", { href: "/orders" }, "All my orders and their parcels"));
    box.hidden = false;
  } catch (err) {
    summaryShown = false;
    console.warn("orders:", errorText(err));
  }
}

let session = null;
let connecting = false;

// A handle for diagnostics (the browser console, and the end-to-end tests): the playback
// peer connection, for getStats(), and the room.
window.livesale = { get peerConnection() { return session ? session.pc : null; }, room };

async function startVideo() {
  if (connecting || session || !shared.show || shared.show.state !== "live") return;
  connecting = true;
  try {
    session = await play(showId, $("video"));
    const pc = session.pc;
    let lostTimer = 0;
    pc.addEventListener("connectionstatechange", () => {
      if (pc.connectionState === "failed" || pc.connectionState === "closed") {
        restartVideo();
      } else if (pc.connectionState === "disconnected") {
        lostTimer = setTimeout(restartVideo, 3000);
      } else if (pc.connectionState === "connected") {
        clearTimeout(lostTimer);
      }
    });
  } catch (err) {
    // Not live yet, or no publisher: try again shortly.
    if (!(err instanceof ApiError) || err.status >= 500 || err.status === 0) {
      console.warn("video:", errorText(err));
    }
    setTimeout(startVideo, 3000);
  } finally {
    connecting = false;
  }
}

function restartVideo() {
  if (session) session.stop();
  session = null;
  setTimeout(startVideo, 1000);
}

function stopVideo() {
  if (session) session.stop();
  session = null;
}

$("unmute").addEventListener("click", () => {
  const video = $("video");
  video.muted = !video.muted;
  $("unmute").textContent = video.muted ? "Tap to unmute" : "Mute";
  video.play().catch(() => {});
});

// --- the line-up strip -----------------------------------------------------------------------

function itemHold(sku) {
  for (const hold of state.holds.values()) {
    if (hold.sku === sku && hold.state === "held") return hold;
  }
  return null;
}

function renderItem(item) {
  const sku = item.sku;
  const soldOut = item.available <= 0;
  const hold = itemHold(sku);
  const featured = shared.featured === sku;
  const waiting = state.notifying.has(sku);
  const buyButton = hold
    ? el("button", { type: "button", class: "buy", onclick: () => openCheckout(hold) }, "Checkout")
    : soldOut && shared.show?.state === "live" ? el("button", {
      type: "button", class: `notify${waiting ? " on" : ""}`, "aria-pressed": String(waiting),
      "aria-label": `Notify me when ${item.title} is back`,
      onclick: () => room.send({ type: "notify", sku, on: !waiting }),
    }, waiting ? "We'll tell you" : "Notify me")
    : el("button", {
      type: "button", class: "buy", disabled: soldOut || shared.show?.state !== "live",
      "aria-label": `Buy ${item.title}`, onclick: (event) => buy(sku, event.currentTarget),
    }, soldOut ? "Sold out" : "Buy");
  return el("li", { class: `item${featured ? " featured" : ""}${soldOut ? " sold-out" : ""}`,
    "data-sku": sku },
  featured && shared.show?.state !== "ended"
    ? el("span", { class: "featured-badge" }, "Now explaining") : null,
  item.image_url ? el("img", { src: item.image_url, alt: "", loading: "lazy" }) : null,
  el("h3", { class: "item-title" }, item.title),
  el("p", { class: "price" },
    el("strong", {}, money(item.price)),
    item.list_price && item.list_price.amount !== item.price.amount
      ? el("s", { class: "list-price" }, money(item.list_price)) : null),
  el("p", { class: "stock", "data-stock": item.available },
    soldOut ? "Sold out" : `${item.available} left`,
    item.limit_per_buyer ? ` · max ${item.limit_per_buyer} each` : ""),
  item.on_hand > 0 ? unitsBar(item) : null,
  el("div", { class: "item-actions" },
    el("button", {
      type: "button", class: "ask",
      disabled: state.requested.has(sku) || featured || shared.show?.state !== "live",
      "aria-label": "Ask to explain", title: `Ask the host to explain ${item.title}`,
      onclick: () => ask(sku),
    }, state.requested.has(sku) ? "Asked ✓" : "Ask to explain"),
    el("button", {
      type: "button", class: `want${state.planted.has(sku) ? " on" : ""}`,
      "aria-pressed": state.planted.has(sku) ? "true" : "false", "aria-label": "Want",
      disabled: shared.show?.state === "ended",
      onclick: () => want(sku),
    }, state.planted.has(sku) ? "♥ Want" : "♡ Want"),
    buyButton));
}

// How much of the item is left, as a bar (its width set through the CSSOM: no inline style).
function unitsBar(item) {
  const fill = el("span");
  fill.style.width = `${Math.min(100, (100 * Math.max(0, item.available)) / item.on_hand)}%`;
  return el("div", { class: "units-bar", "aria-hidden": "true" }, fill);
}

function renderLineup() {
  const list = $("lineup");
  list.replaceChildren(...shared.order.map((sku) => renderItem(shared.items.get(sku))));
  renderFeatured();
}

// Bring the featured card into view; only when the featured item changes, so stock updates
// never pull the strip away from where the viewer scrolled.
function showFeatured() {
  const card = shared.featured &&
    document.querySelector(`#lineup [data-sku="${CSS.escape(shared.featured)}"]`);
  if (card) card.scrollIntoView({ behavior: "smooth", inline: "center", block: "nearest" });
}

function renderFeatured() {
  const box = $("featured");
  const item = shared.featured && shared.items.get(shared.featured);
  if (!item || shared.show?.state === "ended") {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  box.replaceChildren(
    el("span", { class: "featured-badge" }, "Now explaining"),
    el("strong", {}, item.title), " ", el("span", {}, money(item.price)),
  );
}

function ask(sku) {
  if (room.send({ type: "request", sku })) {
    state.requested.add(sku);
    renderLineup();
    toast("Asked the host to explain it");
  }
}

function want(sku) {
  room.send({ type: "plant", sku, want: !state.planted.has(sku) });
}

// --- buying ----------------------------------------------------------------------------------

let tickerTimer = 0;
let paying = false; // a checkout is on its way: no second one until it answers

async function buy(sku, button) {
  if (paying) {
    toast("A payment is in progress — finish it first.");
    return;
  }
  button.disabled = true;
  const key = newKey();
  const body = { sku, qty: 1, idempotency_key: key };
  try {
    let hold;
    try {
      hold = await api("POST", `/api/shows/${showId}/holds`, { token: state.viewer.token, body });
    } catch (err) {
      // A dropped connection: the same key returns the same hold, never a second one.
      if (!(err instanceof ApiError) || err.status !== 0) throw err;
      hold = await api("POST", `/api/shows/${showId}/holds`, { token: state.viewer.token, body });
    }
    state.holds.set(hold.hold_id, hold);
    renderLineup();
    openCheckout(hold);
  } catch (err) {
    if (err.kind === "sold-out") {
      const item = shared.items.get(sku);
      if (item) item.available = err.problem.available ?? 0;
      renderLineup();
      toast(`Sold out — ${err.problem.available ?? 0} left`);
    } else if (err.kind === "limit") {
      toast(`You've reached the limit for this item. ${errorText(err)}`);
    } else {
      toast(`Could not reserve it: ${errorText(err)}`);
    }
    button.disabled = false;
  }
}

let countdownTimer = 0;

// The "Pay with" choice in the checkout form; the Pay button follows the chosen provider.
const payments = new PaymentChoice($("checkout-form"), { onChange: renderPay });

// Until the hold's expiry, or the show's end plus its grace period if that comes first; on
// the server's clock.
function remainingMs(hold) {
  const closes = shared.show?.sales_close_at;
  const until = closes ? Math.min(hold.expires_at, closes) : hold.expires_at;
  return until * 1000 - (Date.now() + state.clockSkew);
}

// The Pay button: the amount, in words that fit the chosen way to pay.
function renderPay() {
  if (paying) return;
  const hold = state.hold;
  const amount = hold ? money(hold.total || hold.price) : "";
  $("pay").textContent = payments.chosen === "manual" ? `Place order · ${amount}` : `Pay ${amount}`;
  $("pay").disabled = !hold || remainingMs(hold) <= 0 || !payments.ready;
}

function tickCountdown() {
  const hold = state.hold;
  if (!hold) return;
  const left = Math.max(0, remainingMs(hold));
  const minutes = Math.floor(left / 60000);
  const seconds = Math.floor((left % 60000) / 1000);
  $("countdown").textContent = `${minutes}:${String(seconds).padStart(2, "0")}`;
  $("countdown").classList.toggle("urgent", left < 60000);
  if (left <= 0) {
    clearInterval(countdownTimer);
    const closed = shared.show?.sales_close_at &&
      shared.show.sales_close_at <= state.hold.expires_at;
    $("checkout-form").querySelector(".form-error").textContent = closed
      ? "The show has ended and its sale is closed; the item went back on the shelf."
      : "Your reservation expired and the item went back on sale.";
    $("pay").disabled = true;
  }
}

function openCheckout(hold) {
  if (paying) {
    // Its dialog is open, or closed while the bank's window is up (which it would cover).
    toast("A payment is in progress — finish it first.");
    return;
  }
  state.hold = hold;
  const item = shared.items.get(hold.sku);
  $("hold-item").textContent = item ? item.title : hold.sku;
  $("hold-qty").textContent = hold.qty;
  $("hold-total").textContent = money(hold.total || hold.price);
  const form = $("checkout-form");
  const error = form.querySelector(".form-error");
  error.textContent = "";
  renderPay();
  payments.load().catch((err) => {
    error.textContent = `The ways to pay could not be loaded: ${errorText(err)} Try again.`;
  });
  try {
    const saved = JSON.parse(localStorage.getItem(SHIPPING_KEY) || "{}");
    for (const name of ["name", "email", "address"]) {
      if (saved[name] && !form.elements[name].value) form.elements[name].value = saved[name];
    }
  } catch {
    // nothing saved
  }
  clearInterval(countdownTimer);
  tickCountdown();
  countdownTimer = setInterval(tickCountdown, 250);
  const dialog = $("checkout-dialog");
  if (!dialog.open) dialog.showModal();
}

function closeCheckout() {
  clearInterval(countdownTimer);
  state.hold = null;
  $("checkout-dialog").close();
}

// Pay for `hold`: the checkout, and when the card's bank asks for it (202, `next_action`),
// its check in Stripe's window and then the same checkout again, whose answer the server
// takes from Stripe itself. Returns the confirmed order; throws an ApiError or an Error in
// words.
async function pay(hold, body) {
  const path = `/api/holds/${hold.hold_id}/checkout`;
  const token = state.viewer.token;
  let order = await api("POST", path, { token, body });
  let problem = "";
  if (order.state !== "confirmed" && order.next_action?.type === "authenticate") {
    // The dialog is modal: everything else on the page, the bank's window too, is out of
    // reach until it closes. It opens again with the answer.
    const dialog = $("checkout-dialog");
    dialog.close();
    $("pay").textContent = "Waiting for your bank…";
    toast("Your bank asks you to confirm this payment.");
    try {
      problem = await payments.authenticate(order.next_action.client_secret);
    } finally {
      if (state.hold === hold && !dialog.open) dialog.showModal();
    }
    $("pay").textContent = "Paying…";
    order = await api("POST", path, { token, body });
  }
  if (order.state !== "confirmed") {
    throw new Error(problem ||
      "Your bank has not confirmed the payment yet. Press Pay again in a moment.");
  }
  return order;
}

function showConfirmed(order) {
  const item = shared.items.get(order.sku);
  $("confirm-text").textContent =
    `${item ? item.title : order.sku} × ${order.qty} — ${money(order.total)}. Order ${order.id}.`;
  const payment = $("confirm-payment");
  payment.textContent = order.test
    ? "A test order: no real money moved."
    : order.payment_status === "due"
      ? "You pay on delivery or by bank transfer; the shop confirms your payment."
      : "";
  payment.hidden = !payment.textContent;
  $("confirm-dialog").showModal();
}

$("checkout-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const hold = state.hold;
  if (!hold || paying) return;
  const form = event.currentTarget;
  const error = form.querySelector(".form-error");
  error.textContent = "";
  const shipping = {
    name: form.elements.name.value.trim(),
    email: form.elements.email.value.trim(),
    address: form.elements.address.value.trim(),
  };
  localStorage.setItem(SHIPPING_KEY, JSON.stringify(shipping));
  paying = true;
  $("pay").disabled = true;
  $("pay").textContent = "Paying…";
  try {
    const order = await pay(hold, { payment: await payments.payment(), shipping });
    noteOrder(order);
    payments.reset();
    state.holds.delete(hold.hold_id);
    closeCheckout();
    renderLineup();
    showConfirmed(order);
  } catch (err) {
    if (err.kind === "payment-declined") {
      error.textContent = `Payment declined: ${errorText(err)} Try another card.`;
    } else if (err.status === 409) {
      error.textContent = `This reservation is no longer valid: ${errorText(err)}`;
      state.holds.delete(hold.hold_id);
      renderLineup();
    } else {
      error.textContent = errorText(err);
    }
  } finally {
    paying = false;
    renderPay();
  }
});

$("cancel-hold").addEventListener("click", async () => {
  const hold = state.hold;
  closeCheckout();
  if (!hold) return;
  try {
    await api("DELETE", `/api/holds/${hold.hold_id}`, { token: state.viewer.token });
  } catch (err) {
    if (err.status !== 404 && err.status !== 409) toast(`Could not release it: ${errorText(err)}`);
  }
  state.holds.delete(hold.hold_id);
  renderLineup();
});

// --- the buyer's orders, changed by the shop ------------------------------------------------

// Remember what `order` is now; returns what this page knew of it before.
function noteOrder(order) {
  const before = state.orders.get(order.id) || { state: "", returned: 0, refunded: 0 };
  state.orders.set(order.id, {
    state: order.state,
    returned: order.returned_qty || 0,
    refunded: order.refunded?.amount || 0,
  });
  return before;
}

// The room told this buyer about one of their orders: say in words what the shop changed.
// Checkout's own steps (pending, authorized, confirmed) need no word here; the checkout shows
// them.
function orderChanged(order) {
  const before = noteOrder(order);
  const item = shared.items.get(order.sku);
  const what = `${item ? item.title : order.sku} (order ${order.id})`;
  const returned = (order.returned_qty || 0) - before.returned;
  if (order.state === "cancelled" && before.state !== "cancelled" && order.returned_qty > 0) {
    notice(`Your order for ${what} was cancelled by the shop; you were not charged.`);
  } else if (returned > 0) {
    const amount = { ...order.refunded, amount: (order.refunded?.amount || 0) - before.refunded };
    const units = returned === 1 ? "1 unit" : `${returned} units`;
    const back = amount.amount > 0 ? ` (${money(amount)})` : "";
    notice(order.state === "refunded" && before.returned === 0
      ? `The shop refunded your order for ${what}: ${money(order.refunded)} goes back to you.`
      : `The shop refunded ${units} of ${what}${back}.`);
  }
}

// A notice that stays until the buyer dismisses it (a toast could pass unseen).
function notice(text) {
  const item = el("li", { class: "notice" }, el("span", {}, text));
  item.append(el("button", {
    type: "button", class: "secondary", "aria-label": "Dismiss", onclick: () => item.remove(),
  }, "OK"));
  $("notices").append(item);
}

// --- chat and hearts -------------------------------------------------------------------------

function renderChat() {
  const list = $("chat");
  list.replaceChildren(...shared.chat.slice(-30).map((line) =>
    el("li", { class: line.host ? "host" : "", "data-id": line.id },
      el("b", {}, line.nick), " ", line.text)));
  list.scrollTop = list.scrollHeight;
}

$("chat-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = $("chat-input");
  const text = input.value.trim();
  if (!text) return;
  if (state.mutedUntil > Date.now()) {
    toast("The host has muted you for a while.");
    return;
  }
  if (room.send({ type: "chat", text })) input.value = "";
  else toast("Not connected — trying again…");
});

let pendingHearts = 0;
let heartTimer = 0;
$("heart").addEventListener("click", () => {
  pendingHearts += 1;
  floatHearts(1);
  clearTimeout(heartTimer);
  heartTimer = setTimeout(() => {
    room.send({ type: "heart", count: Math.min(pendingHearts, 50) });
    pendingHearts = 0;
  }, 300);
});

function floatHearts(count) {
  const layer = $("hearts-layer");
  for (let n = 0; n < Math.min(count, 8); n++) {
    const heart = el("span", { class: "floating-heart" }, "❤");
    heart.style.left = `${10 + Math.random() * 70}%`;
    heart.style.animationDelay = `${n * 90}ms`;
    heart.addEventListener("animationend", () => heart.remove());
    layer.append(heart);
  }
}

// --- the room --------------------------------------------------------------------------------

// What this page draws for each frame, after the room has applied it to `shared`.
function roomHandlers() {
  return {
    snapshot(msg) {
      state.planted = new Set(msg.planted);
      state.notifying = new Set(msg.notifying);
      state.requested = new Set();
      state.mutedUntil = msg.muted_until;
      state.holds = new Map(msg.holds.filter((h) => h.state === "held").map((h) => [h.hold_id, h]));
      $("viewers").textContent = `${msg.viewers} watching`;
      renderLineup();
      renderShow();
      renderChat();
      if (msg.show.state === "live") startVideo();
    },
    show(msg) {
      renderShow();
      renderLineup();
      if (msg.state === "live" && !msg.paused) startVideo();
      if (msg.state === "ended") stopVideo();
    },
    lineup: renderLineup,
    featured(msg) {
      if (msg.sku) state.requested.delete(msg.sku);
      renderLineup();
      showFeatured();
    },
    requests(msg) {
      const open = new Set(msg.queue.map((r) => r.sku));
      for (const sku of [...state.requested]) if (!open.has(sku)) state.requested.delete(sku);
      renderLineup();
    },
    stock: renderLineup,
    sale(msg) {
      // Who bought stays private: the ticker names the item, never the buyer.
      const [first] = msg.items;
      const item = first && shared.items.get(first.sku);
      if (!item) return;
      const ticker = $("ticker");
      ticker.textContent = `Someone just bought ${first.qty > 1 ? `${first.qty} × ` : ""}${item.title}`;
      ticker.hidden = false;
      clearTimeout(tickerTimer);
      tickerTimer = setTimeout(() => (ticker.hidden = true), 4000);
    },
    chat: renderChat,
    chat_deleted: renderChat,
    hearts(msg) {
      floatHearts(msg.count);
    },
    presence(msg) {
      $("viewers").textContent = `${msg.viewers} watching`;
    },
    planted(msg) {
      if (msg.want) state.planted.add(msg.sku);
      else state.planted.delete(msg.sku);
      renderLineup();
    },
    notifying(msg) {
      if (msg.on) state.notifying.add(msg.sku);
      else state.notifying.delete(msg.sku);
      renderLineup();
      if (msg.on) toast("We'll tell you here when it is back.");
    },
    back_in_stock(msg) {
      state.notifying.delete(msg.sku);
      const item = shared.items.get(msg.sku);
      toast(`${item ? item.title : msg.sku} is back — ${msg.available} left`);
      renderLineup();
    },
    muted(msg) {
      state.mutedUntil = msg.until;
      if (msg.until > Date.now()) toast("The host has muted you for a while.");
    },
    slow_mode(msg) {
      if (msg.seconds) toast(`Slow mode: one message every ${msg.seconds} s`);
    },
    hold(msg) {
      if (msg.hold.state === "held") state.holds.set(msg.hold.hold_id, msg.hold);
      else state.holds.delete(msg.hold.hold_id);
      if (state.hold && state.hold.hold_id === msg.hold.hold_id && msg.hold.state === "expired") {
        tickCountdown();
      }
      renderLineup();
    },
    order(msg) {
      if (msg.viewer_id === state.viewer?.viewer_id) orderChanged(msg.order);
    },
    error(msg) {
      toast(msg.detail || msg.code);
    },
  };
}

// The server will not open the room with this token, or there is no such show.
async function onRefused(code) {
  if (code === CLOSE_BAD_TOKEN) {
    // A token this server does not know (a reset server, a broken entry): sign up again.
    localStorage.removeItem(VIEWER_KEY);
    state.viewer = await ensureViewer();
    room.connect(state.viewer.token);
  } else if (code === CLOSE_NO_SHOW) {
    toast("This show does not exist — check the link.");
  } else if (code === CLOSE_BANNED) {
    toast("The host removed you from this show.");
  } else {
    toast("Could not join the show — reload the page to try again.");
  }
}

async function main() {
  if (!showId) {
    toast("No show in this link.");
    return;
  }
  testModeBanner();
  // Ready before the first Buy: Stripe.js and its card element take a moment to load.
  payments.load().catch((err) => console.warn("payments:", errorText(err)));
  state.viewer = await ensureViewer();
  room.connect(state.viewer.token);
  // Server time for the hold countdown, so a wrong local clock doesn't cut it short.
  try {
    const started = Date.now();
    const response = await fetch("/healthz", { cache: "no-store" });
    const server = Date.parse(response.headers.get("date") || "");
    if (!Number.isNaN(server)) state.clockSkew = server - (started + Date.now()) / 2;
  } catch {
    // keep the local clock
  }
}

main();
