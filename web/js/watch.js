// The viewer page: the video over WHEP, full screen on a phone with the room over it (chat,
// hearts, the featured product's card, the sale ticker), the line-up in a sheet behind the bag
// button, a product sheet with a quantity picker, and checkout in a half sheet with the hold's
// countdown. Watching needs nothing; a nickname is asked at the first chat line, ask, want or
// buy.

import {
  api, ApiError, el, errorText, money, newKey, showIdFromPath, toast, VIEWER_KEY,
} from "./api.js";
import {
  addStrings, formatNumber, has, languageSwitch, t, translatePage,
} from "./i18n.js";
import { hlsAvailable, hlsUrl, playHls } from "./hls.js";
import { PaymentChoice, testModeBanner } from "./payments.js";
import { CLOSE_BAD_TOKEN, CLOSE_BANNED, CLOSE_NO_SHOW, Room } from "./room.js";
import WATCH from "./strings/watch.js";
import { play } from "./webrtc.js";

addStrings(WATCH);

const showId = showIdFromPath();
const $ = (id) => document.getElementById(id);
const SHIPPING_KEY = "livesale.shipping";
// How this buyer last paid in this show: the next purchase takes one tap.
const REPEAT_KEY = `livesale.repeat.${showId}`;

// The room's socket and the state it shares with the studio (show, line-up, featured, chat);
// the handlers and `onRefused` are below, under "the room".
const room = new Room(showId, { on: roomHandlers(), chatLimit: 200, onRefused });
const shared = room.state;

// What only this page keeps.
const state = {
  viewer: null, // null while watching without a nickname
  requested: new Set(),
  planted: new Set(),
  notifying: new Set(), // sold-out SKUs this viewer waits for
  holds: new Map(), // hold_id -> hold
  mutedUntil: 0,
  hold: null, // the hold being checked out
  orders: new Map(), // order id -> {state, returned, refunded}: what this page last saw of it
  clockSkew: 0, // server time - local time, ms
  product: null, // the SKU in the product sheet
  qty: 1,
};

const live = () => shared.show?.state === "live";
const ended = () => shared.show?.state === "ended";
// Buy works while the show is live, and after its end while the replay sells.
const selling = () => live() || (ended() && Boolean(shared.show?.replay_sales));

// --- the viewer: watching first, a nickname at the first action -----------------------------

function savedViewer() {
  try {
    const saved = JSON.parse(localStorage.getItem(VIEWER_KEY) || "null");
    if (saved && saved.token) return saved;
  } catch {
    // a broken entry is replaced when the viewer signs in
  }
  return null;
}

let signingIn = null;

// The viewer, signed in: at once when this device has a nickname, else after the nickname
// sheet (a suggested one takes one tap); null when the viewer closes it. The room's socket is
// opened again with the new token before this resolves.
function signedIn() {
  if (state.viewer) return Promise.resolve(state.viewer);
  if (!signingIn) {
    signingIn = askNickname().finally(() => {
      signingIn = null;
    });
  }
  return signingIn;
}

function askNickname() {
  const dialog = $("nickname-dialog");
  const form = $("nickname-form");
  const error = form.querySelector(".form-error");
  const suggested = t("watch.nick_suggested_name", { n: 1000 + Math.floor(Math.random() * 9000) });
  const button = $("nickname-suggested");
  button.textContent = t("watch.nick_use", { name: suggested });
  error.textContent = "";
  dialog.showModal();
  const listening = new AbortController();
  return new Promise((resolve) => {
    const finish = (viewer) => {
      listening.abort();
      if (dialog.open) dialog.close();
      resolve(viewer);
    };
    const join = async (nickname) => {
      error.textContent = "";
      if (!nickname.trim()) {
        error.textContent = t("watch.nick_empty");
        return;
      }
      try {
        const viewer = await api("POST", "/api/viewers", { body: { nickname } });
        localStorage.setItem(VIEWER_KEY, JSON.stringify(viewer));
        state.viewer = viewer;
        room.connect(viewer.token);
        // The action waits for the room to know the viewer; a room slow to answer reconnects
        // on its own, and the action goes ahead (a refused one says so).
        await Promise.race([room.snapshotted(), new Promise((r) => setTimeout(r, 8000))]);
        finish(viewer);
      } catch (err) {
        error.textContent = err.kind === "validation" ? t("watch.nick_invalid") : errorText(err);
      }
    };
    const opts = { signal: listening.signal };
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      join($("nickname-input").value);
    }, opts);
    button.addEventListener("click", () => join(suggested), opts);
    $("nickname-cancel").addEventListener("click", () => finish(null), opts);
    dialog.addEventListener("cancel", () => finish(null), opts);
  });
}

// --- show state and video --------------------------------------------------------------------

function renderShow() {
  const show = shared.show;
  if (!show) return;
  $("title").textContent = show.title;
  $("host-name").textContent = show.host_name;
  $("host-avatar").textContent = (show.host_name || "?").trim().slice(0, 1).toUpperCase();
  document.title = t("watch.page_title", { title: show.title });
  const badge = $("state");
  const paused = show.state === "live" && show.paused;
  badge.textContent = t(paused ? "watch.paused"
    : show.state === "live" && videoMode === "hls" ? "watch.state_live_hls"
      : `watch.state_${show.state}`);
  badge.className = `badge ${paused ? "paused" : show.state}`;
  const status = $("video-status");
  status.textContent = show.state === "scheduled" ? t("watch.not_started")
    : show.state === "ended" ? t("watch.ended")
      : show.paused ? t("watch.reconnecting") : "";
  status.hidden = !status.textContent || videoMode === "replay";
  $("replay-badge").hidden = videoMode !== "replay";
  const over = ended();
  document.body.classList.toggle("ended", over);
  document.body.classList.toggle("selling", selling());
  // After the end the chat is read-only.
  $("chat-input").disabled = over;
  $("chat-input").placeholder = t(over ? "watch.chat_closed" : "watch.say_placeholder");
  for (const button of [$("send"), $("heart")]) button.disabled = over;
  if (over) {
    showMyOrders();
    startReplay();
  }
}

function renderViewers() {
  $("viewers").textContent = t("watch.viewers", { n: shared.viewers, count: formatNumber(shared.viewers) });
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
      el("h2", {}, t("watch.your_orders")),
      mine.length
        ? el("ul", {}, ...mine.map((o) => el("li", {}, `${o.qty} × ${o.title} · ${money(o.total)}`)))
        : el("p", {}, t("watch.bought_nothing")),
      el("a", { href: "/orders" }, t("watch.all_orders")));
    box.hidden = false;
  } catch (err) {
    summaryShown = false;
    console.warn("orders:", errorText(err));
  }
}

let session = null; // WebRTC (WHEP)
let hlsSession = null; // HLS, past the server's WebRTC tier
let connecting = false;
let failures = 0; // WebRTC connections in a row that failed after being answered
// How the video arrives: "webrtc" (live), "hls" (a few seconds behind), "replay" (the
// recording, after the end), or "" (not yet).
let videoMode = "";

// A handle for diagnostics (the browser console, and the end-to-end tests): the playback
// peer connection, for getStats(), how the video arrives, and the room.
window.livesale = {
  get peerConnection() { return session ? session.pc : null; },
  get videoMode() { return videoMode; },
  room,
};

function setVideoMode(mode) {
  videoMode = mode;
  renderShow();
}

async function startVideo() {
  if (connecting || session || hlsSession || !live()) return;
  connecting = true;
  try {
    session = await play(showId, $("video"));
    setVideoMode("webrtc");
    const pc = session.pc;
    let lostTimer = 0;
    pc.addEventListener("connectionstatechange", () => {
      if (pc.connectionState === "failed" || pc.connectionState === "closed") {
        failures += pc.connectionState === "failed" ? 1 : 0;
        restartVideo();
      } else if (pc.connectionState === "disconnected") {
        lostTimer = setTimeout(restartVideo, 3000);
      } else if (pc.connectionState === "connected") {
        failures = 0;
        clearTimeout(lostTimer);
      }
    });
  } catch (err) {
    // 503: the server's WebRTC tier is full (or its relay is off); HLS carries the show, when
    // the server records it. Otherwise not live yet, or no publisher: try again shortly.
    const full = err instanceof ApiError && err.status === 503;
    if (!(err instanceof ApiError) || err.status >= 500 || err.status === 0) {
      console.warn("video:", errorText(err));
    }
    if (!(full && (await startHls()))) setTimeout(startVideo, 3000);
  } finally {
    connecting = false;
  }
}

// Play the show over HLS instead; false when the server has no live playlist for it.
async function startHls() {
  if (hlsSession || !(await hlsAvailable(showId))) return false;
  try {
    hlsSession = await playHls($("video"), hlsUrl(showId), {
      onFatal(reason) {
        console.warn("hls:", reason);
        stopHls();
        setTimeout(startVideo, 3000);
      },
    });
  } catch (err) {
    console.warn("hls:", errorText(err));
    return false;
  }
  setVideoMode("hls");
  return true;
}

function stopHls() {
  if (hlsSession) hlsSession.stop();
  hlsSession = null;
  if (videoMode === "hls") setVideoMode("");
}

// --- the replay: after the end, the recording with a chapter per product explained ---------

let replayAsked = false;
async function startReplay() {
  if (replayAsked || videoMode === "replay") return;
  replayAsked = true;
  let replay;
  try {
    replay = await api("GET", `/api/shows/${showId}/replay`);
  } catch (err) {
    if (err.status !== 404) console.warn("replay:", errorText(err));
    return; // not recorded
  }
  stopVideo();
  try {
    hlsSession = await playHls($("video"), replay.playlist, {
      onFatal: (reason) => console.warn("replay:", reason),
    });
  } catch (err) {
    console.warn("replay:", errorText(err));
    return;
  }
  setVideoMode("replay");
  replayChapters = replay.chapters;
  renderChapters(replay.chapters);
  $("video").addEventListener("timeupdate", followChapter);
}

// On the replay, the product whose explanation is playing takes the featured card, with Buy.
let replayChapters = [];
let replaySku = null;
function followChapter() {
  const at = $("video").currentTime;
  const playing = replayChapters.find((c) => c.start_s <= at && at < c.end_s);
  const sku = playing ? playing.sku : null;
  if (sku === replaySku) return;
  replaySku = sku;
  for (const button of $("chapters").querySelectorAll(".chapter")) {
    if (button.dataset.sku === sku) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
  }
  renderFeatured();
}

function clock(seconds) {
  const whole = Math.floor(seconds);
  const minutes = Math.floor(whole / 60);
  return `${minutes}:${String(whole % 60).padStart(2, "0")}`;
}

// Each product the host explained, with where: a tap jumps the replay there.
function renderChapters(chapters) {
  const box = $("chapters");
  box.replaceChildren(...chapters.map((chapter) => {
    const item = shared.items.get(chapter.sku);
    return el("li", {},
      el("button", {
        type: "button", class: "chapter", "data-sku": chapter.sku,
        title: t("watch.chapter_item", { title: chapter.title, at: clock(chapter.start_s) }),
        onclick: () => {
          const video = $("video");
          video.currentTime = chapter.start_s;
          video.play().catch(() => {});
        },
      },
      item?.image_url ? el("img", { src: item.image_url, alt: "" }) : noImage(),
      el("span", { class: "chapter-text" },
        el("strong", {}, chapter.title), " ", el("span", {}, clock(chapter.start_s)))));
  }));
  box.hidden = chapters.length === 0;
}

function restartVideo() {
  if (session) session.stop();
  session = null;
  // A network that never lets WebRTC through (UDP blocked): HLS over plain HTTP.
  if (failures >= 2) {
    startHls().then((started) => started || setTimeout(startVideo, 1000));
    return;
  }
  setTimeout(startVideo, 1000);
}

function stopVideo() {
  if (session) session.stop();
  session = null;
  stopHls();
}

// A portrait camera fills a portrait screen; a landscape one is shown whole (the stylesheet
// picks the fit from the picture's shape, told here).
function fitVideo() {
  const video = $("video");
  if (!video.videoWidth) return;
  const portrait = video.videoHeight > video.videoWidth;
  $("stage").classList.toggle("source-portrait", portrait);
  $("stage").classList.toggle("source-landscape", !portrait);
}
$("video").addEventListener("loadedmetadata", fitVideo);
$("video").addEventListener("resize", fitVideo);

$("unmute").addEventListener("click", () => {
  const video = $("video");
  video.muted = !video.muted;
  $("unmute").textContent = t(video.muted ? "watch.unmute" : "watch.mute");
  video.play().catch(() => {});
});

// --- the line-up -----------------------------------------------------------------------------

// In place of a product image the merchant has not given: the bag's outline.
function noImage() {
  const box = el("span", { class: "no-image", "aria-hidden": "true" });
  box.append($("bag").querySelector("svg").cloneNode(true));
  return box;
}

function itemHold(sku) {
  for (const hold of state.holds.values()) {
    if (hold.sku === sku && hold.state === "held") return hold;
  }
  return null;
}

// The most this viewer may take of `item` in one go.
function maxQty(item) {
  const limit = item.limit_per_buyer || Infinity;
  return Math.max(0, Math.min(limit, item.available, 99));
}

// The Buy button of `item` wherever it is drawn (line-up, featured card): Checkout for a hold
// already made, Notify me once it is sold out, Buy otherwise.
function buyButton(item) {
  const sku = item.sku;
  const hold = itemHold(sku);
  if (hold) {
    return el("button", {
      type: "button", class: "buy", "aria-label": t("watch.checkout_item", { title: item.title }),
      onclick: () => openCheckout(hold),
    }, t("watch.checkout"));
  }
  if (item.available <= 0 && live()) {
    const waiting = state.notifying.has(sku);
    return el("button", {
      type: "button", class: `notify${waiting ? " on" : ""}`, "aria-pressed": String(waiting),
      "aria-label": t("watch.notify_item", { title: item.title }),
      onclick: () => notify(sku, !waiting),
    }, t(waiting ? "watch.notifying" : "watch.notify"));
  }
  return el("button", {
    type: "button", class: "buy", disabled: item.available <= 0 || !selling(),
    "aria-label": t("watch.buy_item", { title: item.title }),
    onclick: (event) => buy(sku, 1, event.currentTarget),
  }, t(item.available <= 0 ? "watch.sold_out" : "watch.buy"));
}

// The Want button's words: a full heart once wanted.
const wantText = (wanted) => `${wanted ? "♥" : "♡"} ${t("watch.want")}`;

function stockText(item) {
  if (item.available <= 0) return t("watch.sold_out");
  const left = t("watch.left", { n: item.available, count: formatNumber(item.available) });
  return item.limit_per_buyer ? `${left} · ${t("watch.max_each", { n: item.limit_per_buyer })}` : left;
}

function renderItem(item) {
  const sku = item.sku;
  const soldOut = item.available <= 0;
  const featured = shared.featured === sku && !ended();
  const asked = state.requested.has(sku);
  const wanted = state.planted.has(sku);
  return el("li", { class: `item${featured ? " featured" : ""}${soldOut ? " sold-out" : ""}`,
    "data-sku": sku },
  el("button", {
    type: "button", class: "item-open", "aria-label": t("watch.details_item", { title: item.title }),
    onclick: () => openProduct(sku),
  }, item.image_url ? el("img", { src: item.image_url, alt: "", loading: "lazy" })
    : noImage()),
  el("div", { class: "item-body" },
    featured ? el("span", { class: "featured-badge" }, t("watch.now_explaining")) : null,
    el("h3", { class: "item-title" }, item.title),
    el("p", { class: "price" },
      el("strong", {}, money(item.price)),
      item.list_price && item.list_price.amount !== item.price.amount
        ? el("s", { class: "list-price" }, money(item.list_price)) : null),
    el("p", { class: "stock", "data-stock": item.available }, stockText(item)),
    item.on_hand > 0 ? unitsBar(item) : null),
  el("div", { class: "item-actions" },
    el("button", {
      type: "button", class: "ask", disabled: asked || featured || !live(),
      "aria-label": t("watch.ask_item", { title: item.title }),
      onclick: () => ask(sku),
    }, t(asked ? "watch.asked" : "watch.ask")),
    el("button", {
      type: "button", class: `want${wanted ? " on" : ""}`, "aria-pressed": String(wanted),
      "aria-label": t("watch.want_item", { title: item.title }), disabled: ended(),
      onclick: () => want(sku),
    }, wantText(wanted)),
    buyButton(item)));
}

// How much of the item is left, as a bar (its width set through the CSSOM: no inline style).
function unitsBar(item, bar = el("div", { class: "units-bar", "aria-hidden": "true" }, el("span"))) {
  const share = item.on_hand > 0 ? (100 * Math.max(0, item.available)) / item.on_hand : 0;
  bar.firstElementChild.style.width = `${Math.min(100, share)}%`;
  bar.hidden = !(item.on_hand > 0);
  return bar;
}

function renderLineup() {
  $("lineup").replaceChildren(...shared.order.map((sku) => renderItem(shared.items.get(sku))));
  const n = shared.order.length;
  $("bag-count").textContent = n ? formatNumber(n) : "";
  $("bag").setAttribute("aria-label", t("watch.bag", { n, count: formatNumber(n) }));
  renderFeatured();
  renderProduct();
}

// The featured product's card over the video: image, price, units left and Buy.
function renderFeatured() {
  const box = $("featured");
  const replaying = videoMode === "replay";
  const sku = replaying ? replaySku : shared.featured;
  const item = sku && shared.items.get(sku);
  if (!item || (ended() && !replaying)) {
    box.hidden = true;
    box.replaceChildren();
    return;
  }
  box.hidden = false;
  box.replaceChildren(
    el("button", {
      type: "button", class: "featured-open", "aria-label": t("watch.details_item", { title: item.title }),
      onclick: () => openProduct(item.sku),
    }, item.image_url ? el("img", { src: item.image_url, alt: "" })
      : noImage()),
    el("div", { class: "featured-text" },
      el("span", { class: "featured-badge" },
        t(replaying ? "watch.explained_here" : "watch.now_explaining")),
      el("strong", { class: "featured-title" }, item.title),
      el("span", { class: "featured-meta" },
        el("b", { class: "featured-price" }, money(item.price)), " · ", stockText(item)),
      unitsBar(item)),
    buyButton(item));
}

// The line-up sheet behind the bag button (on a phone; a side panel on a desktop).
function setLineupOpen(open) {
  const panel = $("lineup-panel");
  panel.classList.toggle("open", open);
  $("bag").setAttribute("aria-expanded", String(open));
  if (open) panel.querySelector("button")?.focus({ preventScroll: true });
  else if (document.activeElement && panel.contains(document.activeElement)) $("bag").focus();
}
$("bag").addEventListener("click", () => setLineupOpen(!$("lineup-panel").classList.contains("open")));
$("lineup-close").addEventListener("click", () => setLineupOpen(false));
$("lineup-panel").addEventListener("keydown", (event) => {
  if (event.key === "Escape") setLineupOpen(false);
});

// Bring the featured item into view in the line-up; only when the featured item changes, so
// stock updates never pull the list away from where the viewer scrolled.
function showFeatured() {
  const card = shared.featured &&
    document.querySelector(`#lineup [data-sku="${CSS.escape(shared.featured)}"]`);
  if (card) card.scrollIntoView({ behavior: "smooth", block: "nearest" });
}

// --- the product sheet -----------------------------------------------------------------------

function openProduct(sku) {
  state.product = sku;
  state.qty = 1;
  renderProduct();
  const sheet = $("product-sheet");
  if (!sheet.open) sheet.showModal();
}

function renderProduct() {
  const sheet = $("product-sheet");
  const item = state.product && shared.items.get(state.product);
  if (!item) {
    if (sheet.open) sheet.close();
    return;
  }
  const image = $("product-image");
  image.hidden = !item.image_url;
  if (item.image_url && image.getAttribute("src") !== item.image_url) image.src = item.image_url;
  $("product-badge").hidden = !(shared.featured === item.sku && !ended());
  $("product-title").textContent = item.title;
  $("product-price").textContent = money(item.price);
  const listed = item.list_price && item.list_price.amount !== item.price.amount;
  $("product-list-price").textContent = listed ? money(item.list_price) : "";
  $("product-stock").textContent = stockText(item);
  unitsBar(item, $("product-bar"));
  $("product-description").textContent = item.description || "";
  $("product-description").hidden = !item.description;
  const most = maxQty(item);
  state.qty = Math.max(1, Math.min(state.qty, most || 1));
  $("qty").textContent = formatNumber(state.qty);
  $("qty-minus").disabled = state.qty <= 1;
  $("qty-plus").disabled = state.qty >= most;
  $("qty-max").textContent = most > 0 ? t("watch.qty_max", { n: most }) : "";
  const asked = state.requested.has(item.sku);
  const ask = $("product-ask");
  ask.textContent = t(asked ? "watch.asked" : "watch.ask");
  ask.setAttribute("aria-label", t("watch.ask_item", { title: item.title }));
  ask.disabled = asked || shared.featured === item.sku || !live();
  const wanted = state.planted.has(item.sku);
  const wantButton = $("product-want");
  wantButton.textContent = wantText(wanted);
  wantButton.setAttribute("aria-pressed", String(wanted));
  wantButton.setAttribute("aria-label", t("watch.want_item", { title: item.title }));
  wantButton.disabled = ended();
  const buyNow = $("product-buy");
  const hold = itemHold(item.sku);
  const soldOut = item.available <= 0;
  buyNow.classList.toggle("notify", soldOut && !hold && live());
  if (hold) {
    buyNow.textContent = t("watch.checkout");
    buyNow.setAttribute("aria-label", t("watch.checkout_item", { title: item.title }));
  } else if (soldOut && live()) {
    buyNow.textContent = t(state.notifying.has(item.sku) ? "watch.notifying" : "watch.notify");
    buyNow.setAttribute("aria-label", t("watch.notify_item", { title: item.title }));
  } else {
    // "Buy · €39.80" to the eye, "Buy Vitamin C Serum · €39.80" to a screen reader: the
    // name holds the visible words (WCAG 2.5.3), so no aria-label.
    const total = { ...item.price, amount: item.price.amount * state.qty };
    buyNow.removeAttribute("aria-label");
    if (soldOut) buyNow.textContent = t("watch.sold_out");
    else {
      buyNow.replaceChildren(t("watch.buy"), el("span", { class: "sr-only" }, ` ${item.title}`),
        ` · ${money(total)}`);
    }
  }
  buyNow.disabled = !hold && !selling();
}

$("qty-minus").addEventListener("click", () => {
  state.qty -= 1;
  renderProduct();
});
$("qty-plus").addEventListener("click", () => {
  state.qty += 1;
  renderProduct();
});
$("product-close").addEventListener("click", () => $("product-sheet").close());
$("product-sheet").addEventListener("close", () => {
  state.product = null;
});
$("product-ask").addEventListener("click", () => state.product && ask(state.product));
$("product-want").addEventListener("click", () => state.product && want(state.product));
$("product-buy").addEventListener("click", (event) => {
  const sku = state.product;
  const item = sku && shared.items.get(sku);
  if (!item) return;
  const hold = itemHold(sku);
  if (hold) openCheckout(hold);
  else if (item.available <= 0) notify(sku, !state.notifying.has(sku));
  else buy(sku, state.qty, event.currentTarget);
});

// --- asking, wanting, waiting for stock -------------------------------------------------------

async function ask(sku) {
  if (!(await signedIn())) return;
  if (room.send({ type: "request", sku })) {
    state.requested.add(sku);
    renderLineup();
    toast(t("watch.asked_toast"));
  } else {
    toast(t("watch.not_connected"));
  }
}

async function want(sku) {
  if (!(await signedIn())) return;
  room.send({ type: "plant", sku, want: !state.planted.has(sku) });
}

async function notify(sku, on) {
  if (!(await signedIn())) return;
  room.send({ type: "notify", sku, on });
}

// --- buying ----------------------------------------------------------------------------------

let tickerTimer = 0;
let paying = false; // a checkout is on its way: no second one until it answers

async function buy(sku, qty, button) {
  if (paying) {
    toast(t("watch.paying_already"));
    return;
  }
  if (!(await signedIn())) return;
  button.disabled = true;
  const body = { sku, qty, idempotency_key: newKey() };
  const token = state.viewer.token;
  try {
    let hold;
    try {
      hold = await api("POST", `/api/shows/${showId}/holds`, { token, body });
    } catch (err) {
      // A dropped connection: the same key returns the same hold, never a second one.
      if (!(err instanceof ApiError) || err.status !== 0) throw err;
      hold = await api("POST", `/api/shows/${showId}/holds`, { token, body });
    }
    state.holds.set(hold.hold_id, hold);
    if ($("product-sheet").open) $("product-sheet").close();
    renderLineup();
    openCheckout(hold);
  } catch (err) {
    if (err.kind === "sold-out") {
      const item = shared.items.get(sku);
      const left = err.problem.available ?? 0;
      if (item) item.available = left;
      renderLineup();
      toast(left > 0 ? t("watch.only_left", { n: left }) : t("watch.sold_out_toast"));
    } else if (err.kind === "limit") {
      const { limit, current, scope } = err.problem;
      toast(limit ? t(`watch.limit_${scope || "buyer"}`, { limit, current: current ?? 0 })
        : t("problem.limit"));
    } else {
      toast(t("watch.reserve_failed", { why: errorText(err) }));
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
  $("pay").textContent = t(payments.chosen === "manual" ? "checkout.place_order" : "checkout.pay",
    { amount });
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
    $("checkout-form").querySelector(".form-error").textContent =
      t(closed ? "checkout.sale_closed" : "checkout.expired");
    $("pay").disabled = true;
  }
}

function savedShipping() {
  try {
    const saved = JSON.parse(localStorage.getItem(SHIPPING_KEY) || "{}");
    return saved && typeof saved === "object" ? saved : {};
  } catch {
    return {};
  }
}

// How this buyer paid before in this show, when the next purchase can take one tap: the saved
// shipping details are complete and the same way to pay is still offered. A card is typed
// again (this shop keeps no cards), so only its shipping details are taken as they were.
function repeatPurchase() {
  let repeat;
  try {
    repeat = JSON.parse(localStorage.getItem(REPEAT_KEY) || "null");
  } catch {
    return null;
  }
  const shipping = savedShipping();
  if (!repeat || !shipping.name || !shipping.email || !shipping.address) return null;
  if (!payments.offers(repeat.provider)) return null;
  return { ...repeat, shipping };
}

// The checkout's shipping details and ways to pay, or (`show` false) only the one-tap summary
// of a repeat purchase: the card panel stays for a card, which is typed again.
function showDetails(show) {
  $("details").hidden = !show;
  $("pay-with").hidden = !show;
  $("repeat-box").hidden = show;
  if (show) payments.show();
  else for (const id of ["pay-test", "pay-manual"]) $(id).hidden = true;
}

function openCheckout(hold) {
  if (paying) {
    // Its sheet is open, or closed while the bank's window is up (which it would cover).
    toast(t("watch.paying_already"));
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
  showDetails(true);
  const shipping = savedShipping();
  for (const name of ["name", "email", "address"]) {
    if (shipping[name] && !form.elements[name].value) form.elements[name].value = shipping[name];
  }
  payments.load().then(() => {
    const repeat = state.hold === hold && repeatPurchase();
    if (!repeat) return;
    payments.choose(repeat.provider);
    if (repeat.provider === "test" && repeat.token) form.elements.token.value = repeat.token;
    $("repeat-name").textContent = repeat.shipping.name;
    $("repeat-address").textContent = repeat.shipping.address.split("\n")[0];
    $("repeat-pay").textContent = t(`checkout.repeat_${repeat.provider}`);
    showDetails(false);
    renderPay();
  }).catch((err) => {
    error.textContent = t("checkout.ways_failed", { why: errorText(err) });
  });
  clearInterval(countdownTimer);
  tickCountdown();
  countdownTimer = setInterval(tickCountdown, 250);
  const dialog = $("checkout-dialog");
  if (!dialog.open) dialog.showModal();
}

$("change-details").addEventListener("click", () => showDetails(true));

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
    // The sheet is modal: everything else on the page, the bank's window too, is out of
    // reach until it closes. It opens again with the answer.
    const dialog = $("checkout-dialog");
    dialog.close();
    setLineupOpen(false); // nothing of the page over the bank's window
    $("pay").textContent = t("checkout.waiting_bank");
    toast(t("checkout.bank_asks"));
    try {
      problem = await payments.authenticate(order.next_action.client_secret);
    } finally {
      if (state.hold === hold && !dialog.open) dialog.showModal();
    }
    $("pay").textContent = t("checkout.paying");
    order = await api("POST", path, { token, body });
  }
  if (order.state !== "confirmed") throw new Error(problem || t("checkout.bank_pending"));
  return order;
}

function showConfirmed(order) {
  const item = shared.items.get(order.sku);
  $("confirm-text").textContent = t("confirm.text", {
    title: item ? item.title : order.sku, qty: order.qty, total: money(order.total), id: order.id,
  });
  const payment = $("confirm-payment");
  payment.textContent = order.test ? t("confirm.test")
    : order.payment_status === "due" ? t("confirm.due") : "";
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
  $("pay").textContent = t("checkout.paying");
  try {
    const payment = await payments.payment();
    const order = await pay(hold, { payment, shipping });
    localStorage.setItem(REPEAT_KEY, JSON.stringify({
      provider: payment.provider, token: payment.provider === "test" ? payment.token : "",
    }));
    noteOrder(order);
    payments.reset();
    state.holds.delete(hold.hold_id);
    closeCheckout();
    renderLineup();
    showConfirmed(order);
  } catch (err) {
    if (err.kind === "payment-declined") {
      // The bank's or the card processor's reason, as they give it.
      error.textContent = t("checkout.declined", { why: err.message });
      showDetails(true);
    } else if (err.status === 409) {
      error.textContent = t("checkout.invalid", { why: errorText(err) });
      state.holds.delete(hold.hold_id);
      renderLineup();
    } else {
      error.textContent = errorText(err);
      if (err.kind === "validation") showDetails(true);
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
    if (err.status !== 404 && err.status !== 409) {
      toast(t("checkout.release_failed", { why: errorText(err) }));
    }
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
  const what = t("notice.what", { title: item ? item.title : order.sku, id: order.id });
  const returned = (order.returned_qty || 0) - before.returned;
  if (order.state === "cancelled" && before.state !== "cancelled" && order.returned_qty > 0) {
    notice(t("notice.cancelled", { what }));
  } else if (returned > 0) {
    const amount = { ...order.refunded, amount: (order.refunded?.amount || 0) - before.refunded };
    notice(order.state === "refunded" && before.returned === 0
      ? t("notice.refunded", { what, amount: money(order.refunded) })
      : t("notice.partly_refunded", {
        what, n: returned, amount: amount.amount > 0 ? t("notice.amount", { amount: money(amount) }) : "",
      }));
  }
}

// A notice that stays until the buyer dismisses it (a toast could pass unseen).
function notice(text) {
  const item = el("li", { class: "notice" }, el("span", {}, text));
  item.append(el("button", {
    type: "button", class: "secondary", "aria-label": t("notice.dismiss"),
    onclick: () => item.remove(),
  }, t("notice.ok")));
  $("notices").append(item);
}

// --- chat and hearts -------------------------------------------------------------------------

function renderChat() {
  const list = $("chat");
  list.replaceChildren(...shared.chat.slice(-30).map((line) =>
    el("li", { class: line.host ? "host" : "", "data-id": line.id },
      line.host ? el("span", { class: "host-tag" }, t("watch.host_tag")) : null,
      el("b", {}, line.nick), " ", line.text)));
  list.scrollTop = list.scrollHeight;
}

$("chat-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("chat-input");
  const text = input.value.trim();
  if (!text) return;
  if (!(await signedIn())) return;
  if (state.mutedUntil > Date.now()) {
    toast(t("watch.muted"));
    return;
  }
  if (room.send({ type: "chat", text })) input.value = "";
  else toast(t("watch.not_connected"));
});

// A watcher who taps into the chat is asked for a nickname first, as in the apps.
$("chat-input").addEventListener("focus", () => {
  if (!state.viewer && !ended()) signedIn();
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
      renderViewers();
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
      ticker.textContent = first.qty > 1
        ? t("watch.sale_n", { n: first.qty, title: item.title })
        : t("watch.sale", { title: item.title });
      ticker.hidden = false;
      clearTimeout(tickerTimer);
      tickerTimer = setTimeout(() => (ticker.hidden = true), 4000);
    },
    chat: renderChat,
    chat_deleted: renderChat,
    hearts(msg) {
      floatHearts(msg.count);
    },
    presence: renderViewers,
    planted(msg) {
      if (msg.want) state.planted.add(msg.sku);
      else state.planted.delete(msg.sku);
      renderLineup();
    },
    notifying(msg) {
      if (msg.on) state.notifying.add(msg.sku);
      else state.notifying.delete(msg.sku);
      renderLineup();
      if (msg.on) toast(t("watch.notify_toast"));
    },
    back_in_stock(msg) {
      state.notifying.delete(msg.sku);
      const item = shared.items.get(msg.sku);
      toast(t("watch.back_in_stock", { title: item ? item.title : msg.sku, n: msg.available }));
      renderLineup();
    },
    muted(msg) {
      state.mutedUntil = msg.until;
      if (msg.until > Date.now()) toast(t("watch.muted"));
    },
    slow_mode(msg) {
      if (msg.seconds) toast(t("watch.slow_mode", { n: msg.seconds }));
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
      toast(has(`room.${msg.code}`) ? t(`room.${msg.code}`) : msg.detail || msg.code);
    },
  };
}

// The server will not open the room with this token, or there is no such show.
function onRefused(code) {
  if (code === CLOSE_BAD_TOKEN) {
    // A token this server does not know (a reset server, a broken entry): watch without one;
    // a nickname is asked again at the next action.
    localStorage.removeItem(VIEWER_KEY);
    state.viewer = null;
    room.connect("");
  } else if (code === CLOSE_NO_SHOW) {
    toast(t("watch.no_show"));
  } else if (code === CLOSE_BANNED) {
    toast(t("problem.banned"));
  } else {
    toast(t("watch.join_failed"));
  }
}

async function main() {
  translatePage();
  $("lang-slot").replaceWith(languageSwitch());
  if (!showId) {
    toast(t("watch.no_show"));
    return;
  }
  testModeBanner();
  // Ready before the first Buy: Stripe.js and its card element take a moment to load.
  payments.load().catch((err) => console.warn("payments:", errorText(err)));
  state.viewer = savedViewer();
  room.connect(state.viewer ? state.viewer.token : "");
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
