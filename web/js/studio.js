// The host studio: camera preview, going live over WHIP, the line-up, requests, chat, live sales.

import { api, el, errorText, money, showIdFromPath, toast } from "./api.js";
import { paymentConfig, testModeBanner } from "./payments.js";
import { CLOSE_BAD_TOKEN, CLOSE_NO_SHOW, Room } from "./room.js";
import { publish } from "./webrtc.js";

const showId = showIdFromPath();
const $ = (id) => document.getElementById(id);
const TOKEN_KEY = `livesale.host.${showId}`;

// The room's socket and the state it shares with the viewer page (show, line-up, featured,
// requests, chat); the handlers and `onRefused` are below, under "the room".
const room = new Room(showId, { on: roomHandlers(), chatLimit: 300, onRefused });
const shared = room.state;
// A handle for diagnostics (the browser console, and the end-to-end tests).
window.livesale = { room };

// What only this page keeps.
const state = {
  token: "",
  plants: {},
  stream: null,
  session: null,
  units: 0,
  revenue: {},
};

// --- the host token: from the link's #token=..., kept in this tab only -----------------------

async function hostToken() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const fromLink = fragment.get("token");
  if (fromLink) {
    sessionStorage.setItem(TOKEN_KEY, fromLink);
    history.replaceState(null, "", location.pathname); // keep it out of screenshots and history
    return fromLink;
  }
  const kept = sessionStorage.getItem(TOKEN_KEY);
  if (kept) return kept;
  const dialog = $("token-dialog");
  dialog.showModal();
  // Asked again after a refused token: this call's listener is the only one on the form.
  const listening = new AbortController();
  return new Promise((resolve) => {
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = $("token-input").value.trim();
      if (!token) return;
      sessionStorage.setItem(TOKEN_KEY, token);
      listening.abort();
      dialog.close();
      resolve(token);
    }, { signal: listening.signal });
  });
}

// --- camera and microphone -------------------------------------------------------------------

async function openCamera() {
  const camera = $("camera").value;
  const microphone = $("microphone").value;
  // Upright on a portrait screen (a host's phone), as viewers' phones show it; else wide.
  const framing = matchMedia("(orientation: portrait)").matches
    ? { width: { ideal: 720 }, height: { ideal: 1280 } }
    : { width: { ideal: 1280 }, height: { ideal: 720 } };
  const constraints = {
    video: camera ? { deviceId: { exact: camera }, ...framing } : framing,
    audio: microphone ? { deviceId: { exact: microphone } } : true,
  };
  try {
    const stream = await navigator.mediaDevices.getUserMedia(constraints);
    if (state.stream) for (const track of state.stream.getTracks()) track.stop();
    state.stream = stream;
    $("preview").srcObject = stream;
    $("media-status").textContent = "";
    await listDevices();
    if (state.session) {
      // Live: swap the tracks in place, no renegotiation.
      for (const sender of state.session.pc.getSenders()) {
        const track = stream.getTracks().find((t) => t.kind === sender.track?.kind);
        if (track) await sender.replaceTrack(track);
      }
    }
  } catch (err) {
    $("media-status").textContent =
      `Camera or microphone unavailable: ${err.message || err.name}. Check the browser's permission.`;
  }
}

async function listDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  for (const [select, kind] of [[$("camera"), "videoinput"], [$("microphone"), "audioinput"]]) {
    const current = state.stream?.getTracks().find((t) => `${t.kind}input` === kind)
      ?.getSettings().deviceId;
    select.replaceChildren(...devices.filter((d) => d.kind === kind).map((d, n) =>
      el("option", { value: d.deviceId, selected: d.deviceId === current },
        d.label || `${kind === "videoinput" ? "Camera" : "Microphone"} ${n + 1}`)));
  }
}

$("camera").addEventListener("change", openCamera);
$("microphone").addEventListener("change", openCamera);

// --- going live and ending -------------------------------------------------------------------

async function goLive() {
  const button = $("go-live");
  button.disabled = true;
  try {
    if (!state.stream) await openCamera();
    if (!state.stream) throw new Error("no camera");
    if (shared.show?.state !== "live") {
      shared.show = await api("POST", `/api/shows/${showId}/start`, { token: state.token });
    }
    await startPublishing();
    renderShow();
  } catch (err) {
    toast(`Could not go live: ${errorText(err)}`);
    button.disabled = false;
  }
}

async function startPublishing() {
  if (state.session) await state.session.stop();
  state.session = await publish(showId, state.token, state.stream);
  const pc = state.session.pc;
  pc.addEventListener("connectionstatechange", () => {
    if (pc !== state.session?.pc) return;
    if (pc.connectionState === "failed") {
      // Network change: publish again; viewers resume without renegotiating.
      toast("Connection lost — reconnecting…");
      state.session = null;
      setTimeout(() => shared.show?.state === "live" && startPublishing().catch((e) =>
        toast(`Reconnect failed: ${errorText(e)}`)), 1000);
    }
    $("media-status").textContent = pc.connectionState === "connected" ? "You're live." : "";
  });
}

$("go-live").addEventListener("click", goLive);
$("end-show").addEventListener("click", () => $("end-dialog").showModal());
$("end-form").addEventListener("submit", async (event) => {
  if (event.submitter?.value !== "end") return;
  try {
    shared.show = await api("POST", `/api/shows/${showId}/end`, { token: state.token });
    if (state.session) await state.session.stop();
    state.session = null;
    renderShow();
    toast("The show has ended. Paid orders will ship as one batch.");
  } catch (err) {
    toast(`Could not end the show: ${errorText(err)}`);
  }
});

function renderShow() {
  const show = shared.show;
  if (!show) return;
  $("title").textContent = show.title;
  document.title = `Studio: ${show.title}`;
  const live = show.state === "live";
  $("state").textContent = live ? (show.paused ? "Paused" : "Live") : show.state === "ended"
    ? "Ended" : "Not live";
  $("state").className = `badge ${live && show.paused ? "paused" : show.state}`;
  // Live and publishing: nothing to press. Live without a camera session (a reloaded tab):
  // the same button publishes again and viewers resume.
  $("go-live").hidden = show.state === "ended" || (live && Boolean(state.session));
  $("go-live").disabled = false;
  $("go-live").textContent = live ? "Resume camera" : "Go live";
  $("end-show").disabled = show.state === "ended";
  if (show.state === "ended") closeStudio();
}

// Time on air since the show went live (frozen at its end): h:mm:ss.
function tickTimer() {
  const show = shared.show;
  const timer = $("show-timer");
  if (!show || !show.started_at) {
    timer.hidden = true;
    return;
  }
  const until = show.ended_at ? show.ended_at * 1000 : Date.now();
  const total = Math.max(0, Math.floor((until - show.started_at * 1000) / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const sec = String(total % 60).padStart(2, "0");
  timer.textContent = h ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
  timer.hidden = false;
}

// The show is over: the camera and microphone go off and the controls with them.
function closeStudio() {
  if (state.session) state.session.stop().catch(() => {});
  state.session = null;
  if (state.stream) for (const track of state.stream.getTracks()) track.stop();
  document.body.classList.add("ended");
  disableIfEnded();
  $("media-status").textContent = "The show has ended; the camera and microphone are off.";
}

// Controls drawn again after the end (a stock or chat update) stay off.
function disableIfEnded() {
  if (shared.show?.state !== "ended") return;
  const controls = "#lineup button, #queue button, #chat button, #chat-form button, #chat-form input";
  for (const control of document.querySelectorAll(controls)) control.disabled = true;
}

// --- line-up, requests, plants ---------------------------------------------------------------

function renderLineup() {
  const rows = shared.order.map((sku) => {
    const item = shared.items.get(sku);
    const featured = shared.featured === sku;
    return el("li", { class: `row${featured ? " featured" : ""}`, "data-sku": sku },
      item.image_url ? el("img", { src: item.image_url, alt: "" }) : el("span"),
      el("div", {},
        el("div", { class: "name" }, featured ? el("span", { class: "featured-badge" }, "Featured") : null,
          " ", item.title),
        el("div", { class: "meta" },
          `${money(item.price)} · ${item.available} in stock · ♥ ${state.plants[sku] || 0} want`)),
      featured
        ? el("button", { type: "button", class: "secondary", onclick: () => send({ type: "unfeature" }),
          "aria-label": "Unfeature" }, "Unfeature")
        : el("button", { type: "button", onclick: () => send({ type: "feature", sku }),
          "aria-label": "Feature" }, "Feature"));
  });
  $("lineup").replaceChildren(...rows);
  disableIfEnded();
}

function renderQueue() {
  if (!shared.requests.length) {
    $("queue").replaceChildren(el("li", { class: "empty" }, "No requests yet."));
    return;
  }
  $("queue").replaceChildren(...shared.requests.map((entry) => {
    const item = shared.items.get(entry.sku);
    return el("li", { class: "row", "data-sku": entry.sku },
      el("div", {}, el("div", { class: "name" }, item ? item.title : entry.sku),
        el("div", { class: "meta" }, el("span", { class: "votes" }, entry.votes), " asked")),
      el("button", { type: "button", onclick: () => send({ type: "feature", sku: entry.sku }),
        "aria-label": "Explain now" }, "Explain now"),
      el("button", { type: "button", class: "secondary",
        onclick: () => send({ type: "resolve", sku: entry.sku }), "aria-label": "Dismiss" }, "✕"));
  }));
  disableIfEnded();
}

// --- chat ------------------------------------------------------------------------------------

function renderChat() {
  const list = $("chat");
  list.replaceChildren(...shared.chat.slice(-100).map((line) =>
    el("li", { class: "row", "data-id": line.id },
      el("div", {}, el("b", {}, line.nick), " ", line.text),
      el("button", { type: "button", class: "secondary", "aria-label": `Delete message from ${line.nick}`,
        onclick: () => send({ type: "delete_chat", id: line.id }) }, "Delete"),
      line.host ? el("span") : el("button", {
        type: "button", class: "secondary", "aria-label": `Mute ${line.nick} for 5 minutes`,
        onclick: () => {
          send({ type: "mute", viewer_id: line.viewer_id, seconds: 300 });
          toast(`${line.nick} is muted for 5 minutes`);
        },
      }, "Mute"),
      line.host ? el("span") : el("button", {
        type: "button", class: "secondary", "aria-label": `Remove ${line.nick} from the show`,
        onclick: () => {
          if (!confirm(`Remove ${line.nick} from the show? They and their network cannot rejoin.`)) return;
          send({ type: "ban", viewer_id: line.viewer_id });
          toast(`${line.nick} is removed from the show`);
        },
      }, "Remove"))));
  list.scrollTop = list.scrollHeight;
  disableIfEnded();
}

$("chat-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("chat-input").value.trim();
  if (text && send({ type: "chat", text })) $("chat-input").value = "";
});
$("slow-mode").addEventListener("change", (event) => {
  send({ type: "slow_mode", seconds: Number(event.target.value) });
});

// --- live sales ------------------------------------------------------------------------------

function renderStats() {
  $("stat-units").textContent = state.units;
  const revenue = Object.entries(state.revenue);
  $("stat-revenue").textContent = revenue.length
    ? revenue.map(([currency, amount]) => money({ amount, currency })).join(" + ") : "0";
}

// Stock frames arrive every ~200 ms in a flash sale: ask for the live holds at most every 2 s.
let statsTimer = 0;
function refreshStatsSoon() {
  if (!statsTimer) statsTimer = setTimeout(() => { statsTimer = 0; refreshStats(); }, 2000);
}

async function refreshStats() {
  try {
    // The panel leaves test money out, as the merchant's figures do, unless the shop is in
    // test mode: then a rehearsal's sales show, and the label says they include test money.
    const payments = await paymentConfig().catch(() => ({ test_mode: false }));
    const query = payments.test_mode ? "?test=include" : "";
    const stats = await api("GET", `/api/shows/${showId}/stats${query}`, { token: state.token });
    state.units = stats.units;
    state.revenue = Object.fromEntries(stats.revenue.map((m) => [m.currency, m.amount]));
    $("stat-holds").textContent = stats.live_holds;
    $("stat-revenue").nextElementSibling.textContent =
      stats.includes_test ? "revenue (with test money)" : "revenue";
    renderStats();
  } catch (err) {
    console.warn("stats:", errorText(err));
  }
}

// --- the room --------------------------------------------------------------------------------

const send = (msg) => {
  if (room.send(msg)) return true;
  toast("Not connected — reconnecting…");
  return false;
};

// What this page draws for each frame, after the room has applied it to `shared`.
function roomHandlers() {
  return {
    snapshot(msg) {
      state.plants = { ...msg.plants };
      $("stat-viewers").textContent = msg.viewers;
      $("slow-mode").value = String(msg.slow_mode);
      renderLineup();
      renderQueue();
      renderShow();
      renderChat();
      refreshStats();
    },
    show() {
      renderShow();
      refreshStats();
    },
    lineup() {
      renderLineup();
      renderQueue();
    },
    featured: renderLineup,
    requests: renderQueue,
    plants(msg) {
      state.plants[msg.sku] = msg.count;
      renderLineup();
    },
    stock() {
      renderLineup();
      refreshStatsSoon();
    },
    sale(msg) {
      for (const { sku, qty } of msg.items) {
        const item = shared.items.get(sku);
        state.units += qty;
        if (item) {
          const currency = item.price.currency;
          state.revenue[currency] = (state.revenue[currency] || 0) + qty * item.price.amount;
        }
      }
      renderStats();
    },
    chat: renderChat,
    chat_deleted: renderChat,
    presence(msg) {
      $("stat-viewers").textContent = msg.viewers;
    },
    slow_mode(msg) {
      $("slow-mode").value = String(msg.seconds);
    },
    error(msg) {
      toast(msg.detail || msg.code);
    },
  };
}

// The server will not open the room with this token, or there is no such show.
async function onRefused(code) {
  if (code === CLOSE_BAD_TOKEN) {
    // Not this show's host token (a mistyped one, or one rotated since): ask for it again.
    sessionStorage.removeItem(TOKEN_KEY);
    $("token-form").querySelector(".form-error").textContent =
      "That host token is wrong, or it was replaced (livesale show token): use the new link.";
    state.token = await hostToken();
    $("token-form").querySelector(".form-error").textContent = "";
    room.connect(state.token);
  } else if (code === CLOSE_NO_SHOW) {
    toast("This show does not exist — check the link.");
  } else {
    toast("Could not open the studio — reload the page to try again.");
  }
}

async function main() {
  testModeBanner();
  if (!showId) return;
  state.token = await hostToken();
  room.connect(state.token);
  await openCamera();
  setInterval(() => shared.show?.state === "live" && refreshStats(), 5000);
  setInterval(tickTimer, 1000);
}

main();
