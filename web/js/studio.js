// The host studio: camera preview, going live over WHIP, the line-up, requests, chat, live sales.
// On a phone the panels are tabs (one at a time, the tab bar always in reach); from 900 px wide
// they all show side by side.

import { api, el, errorText, money, showIdFromPath, toast } from "./api.js";
import { addStrings, formatNumber, has, languageSwitch, t, translatePage } from "./i18n.js";
import { paymentConfig, testModeBanner } from "./payments.js";
import { CLOSE_BAD_TOKEN, CLOSE_NO_SHOW, Room } from "./room.js";
import STUDIO from "./strings/studio.js";
import { publish } from "./webrtc.js";

addStrings(STUDIO);

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

// --- tabs on a phone, every panel side by side from 900 px -----------------------------------

// WAI-ARIA's tabs pattern (automatic activation): arrows, Home and End move between the tabs.
// On a wide screen the tab bar is gone and every panel is a plain region with its heading.
const WIDE = matchMedia("(min-width: 900px)");
const TAB_KEY = "livesale.studio.tab";

function tabs() {
  return [...document.querySelectorAll('.studio-tabs [role="tab"]')];
}

function selectedTab() {
  const kept = sessionStorage.getItem(TAB_KEY);
  return tabs().find((tab) => tab.id === kept) || tabs()[0];
}

function showTab(chosen, { focus = false } = {}) {
  sessionStorage.setItem(TAB_KEY, chosen.id);
  layOut();
  if (focus) chosen.focus();
  if (chosen.id === "tab-chat") $("chat").scrollTop = $("chat").scrollHeight;
}

function layOut() {
  const tabbed = !WIDE.matches;
  const chosen = selectedTab();
  document.body.classList.toggle("tabbed", tabbed);
  document.querySelector(".studio-tabs").hidden = !tabbed;
  for (const tab of tabs()) {
    const panel = $(tab.getAttribute("aria-controls"));
    const selected = tab === chosen;
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
    if (tabbed) {
      panel.setAttribute("role", "tabpanel");
      panel.setAttribute("aria-labelledby", tab.id);
      panel.hidden = !selected;
    } else {
      panel.removeAttribute("role");
      panel.setAttribute("aria-labelledby", panel.querySelector("h2").id);
      panel.hidden = false;
    }
  }
}

function setUpTabs() {
  const list = document.querySelector(".studio-tabs");
  list.addEventListener("click", (event) => {
    const tab = event.target.closest('[role="tab"]');
    if (tab) showTab(tab);
  });
  list.addEventListener("keydown", (event) => {
    const all = tabs();
    const at = all.indexOf(document.activeElement);
    if (at < 0) return;
    const next = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: all.length - 1 }[event.key];
    if (next === undefined) return;
    event.preventDefault();
    showTab(all[(next + all.length) % all.length], { focus: true });
  });
  WIDE.addEventListener("change", layOut);
  layOut();
}

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
    console.warn("camera:", err);
    $("media-status").textContent = t("studio.media.unavailable");
  }
}

async function listDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  for (const [select, kind] of [[$("camera"), "videoinput"], [$("microphone"), "audioinput"]]) {
    const current = state.stream?.getTracks().find((t) => `${t.kind}input` === kind)
      ?.getSettings().deviceId;
    select.replaceChildren(...devices.filter((d) => d.kind === kind).map((d, n) =>
      el("option", { value: d.deviceId, selected: d.deviceId === current },
        d.label || t(kind === "videoinput" ? "studio.camera_n" : "studio.microphone_n",
          { number: n + 1 }))));
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
    if (!state.stream) throw new Error(t("studio.no_camera"));
    if (shared.show?.state !== "live") {
      shared.show = await api("POST", `/api/shows/${showId}/start`, { token: state.token });
    }
    await startPublishing();
    renderShow();
  } catch (err) {
    toast(t("studio.go_live_failed", { reason: errorText(err) }));
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
      toast(t("studio.reconnecting"));
      state.session = null;
      setTimeout(() => shared.show?.state === "live" && startPublishing().catch((e) =>
        toast(t("studio.reconnect_failed", { reason: errorText(e) }))), 1000);
    }
    $("media-status").textContent = pc.connectionState === "connected" ? t("studio.media.live") : "";
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
    toast(t("studio.ended_toast"));
  } catch (err) {
    toast(t("studio.end_failed", { reason: errorText(err) }));
  }
});

function renderShow() {
  const show = shared.show;
  if (!show) return;
  $("title").textContent = show.title;
  document.title = t("studio.page_title_show", { title: show.title });
  const live = show.state === "live";
  const shown = live && show.paused ? "paused" : show.state;
  $("state").textContent = t(`studio.state.${shown}`);
  $("state").className = `badge ${live && show.paused ? "paused" : show.state}`;
  // Live and publishing: nothing to press. Live without a camera session (a reloaded tab):
  // the same button publishes again and viewers resume.
  $("go-live").hidden = show.state === "ended" || (live && Boolean(state.session));
  $("go-live").disabled = false;
  $("go-live").textContent = t(live ? "studio.resume" : "studio.go_live");
  $("end-show").disabled = show.state === "ended";
  tickTimer();
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
  $("media-status").textContent = t("studio.media.ended");
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
    const wants = state.plants[sku] || 0;
    return el("li", { class: `row${featured ? " featured" : ""}`, "data-sku": sku },
      item.image_url ? el("img", { src: item.image_url, alt: "" }) : el("span"),
      el("div", {},
        el("div", { class: "name" },
          featured ? el("span", { class: "featured-badge" }, t("studio.featured")) : null,
          " ", item.title),
        el("div", { class: "meta" }, [
          money(item.price),
          t("studio.in_stock", { n: item.available, count: formatNumber(item.available) }),
          t("studio.wants", { n: wants, count: formatNumber(wants) }),
        ].join(" · "))),
      featured
        ? el("button", { type: "button", class: "secondary", onclick: () => send({ type: "unfeature" }),
          "aria-label": t("studio.unfeature_item", { title: item.title }) }, t("studio.unfeature"))
        : el("button", { type: "button", onclick: () => send({ type: "feature", sku }),
          "aria-label": t("studio.feature_item", { title: item.title }) }, t("studio.feature")));
  });
  $("lineup").replaceChildren(...rows);
  disableIfEnded();
}

function renderQueue() {
  const count = $("requests-count");
  count.textContent = formatNumber(shared.requests.length);
  count.hidden = !shared.requests.length;
  if (!shared.requests.length) {
    $("queue").replaceChildren(el("li", { class: "empty" }, t("studio.no_requests")));
    return;
  }
  $("queue").replaceChildren(...shared.requests.map((entry) => {
    const item = shared.items.get(entry.sku);
    const title = item ? item.title : entry.sku;
    // "3 asked": the number stands out, the words around it are the language's.
    const [before, after] = t("studio.asked", { n: entry.votes, count: "\u0000" }).split("\u0000");
    return el("li", { class: "row", "data-sku": entry.sku },
      el("div", {}, el("div", { class: "name" }, title),
        el("div", { class: "meta" }, before,
          el("span", { class: "votes" }, formatNumber(entry.votes)), after)),
      el("button", { type: "button", onclick: () => send({ type: "feature", sku: entry.sku }),
        "aria-label": t("studio.explain_item", { title }) }, t("studio.explain_now")),
      el("button", { type: "button", class: "secondary dismiss",
        onclick: () => send({ type: "resolve", sku: entry.sku }),
        "aria-label": t("studio.dismiss_item", { title }) }, "✕"));
  }));
  disableIfEnded();
}

// --- chat ------------------------------------------------------------------------------------

function renderChat() {
  const list = $("chat");
  list.replaceChildren(...shared.chat.slice(-100).map((line) =>
    el("li", { class: "row", "data-id": line.id },
      el("div", {}, el("b", {}, line.nick), " ", line.text),
      el("div", { class: "chat-actions" },
        el("button", {
          type: "button", class: "secondary", "aria-label": t("studio.delete_item", { nick: line.nick }),
          onclick: () => send({ type: "delete_chat", id: line.id }),
        }, t("studio.delete")),
        line.host ? null : el("button", {
          type: "button", class: "secondary", "aria-label": t("studio.mute_item", { nick: line.nick }),
          onclick: () => {
            send({ type: "mute", viewer_id: line.viewer_id, seconds: 300 });
            toast(t("studio.muted", { nick: line.nick }));
          },
        }, t("studio.mute")),
        line.host ? null : el("button", {
          type: "button", class: "secondary", "aria-label": t("studio.remove_item", { nick: line.nick }),
          onclick: () => {
            if (!confirm(t("studio.remove_confirm", { nick: line.nick }))) return;
            send({ type: "ban", viewer_id: line.viewer_id });
            toast(t("studio.removed", { nick: line.nick }));
          },
        }, t("studio.remove"))))));
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
  $("stat-units").textContent = formatNumber(state.units);
  const revenue = Object.entries(state.revenue);
  $("stat-revenue").textContent = revenue.length
    ? revenue.map(([currency, amount]) => money({ amount, currency })).join(" + ") : formatNumber(0);
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
    $("stat-holds").textContent = formatNumber(stats.live_holds);
    $("stat-revenue").nextElementSibling.textContent =
      t(stats.includes_test ? "studio.stat.revenue_test" : "studio.stat.revenue");
    renderStats();
  } catch (err) {
    console.warn("stats:", errorText(err));
  }
}

// --- the room --------------------------------------------------------------------------------

const send = (msg) => {
  if (room.send(msg)) return true;
  toast(t("studio.not_connected"));
  return false;
};

// What this page draws for each frame, after the room has applied it to `shared`.
function roomHandlers() {
  return {
    snapshot(msg) {
      state.plants = { ...msg.plants };
      $("stat-viewers").textContent = formatNumber(msg.viewers);
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
      $("stat-viewers").textContent = formatNumber(msg.viewers);
    },
    slow_mode(msg) {
      $("slow-mode").value = String(msg.seconds);
    },
    error(msg) {
      // The room's refusals in the host's words; its detail is for the log, not for people.
      console.warn("room refused:", msg.code, msg.detail);
      const key = `studio.refusal.${msg.code}`;
      toast(t(has(key) ? key : "studio.refusal.other"));
    },
  };
}

// The server will not open the room with this token, or there is no such show.
async function onRefused(code) {
  if (code === CLOSE_BAD_TOKEN) {
    // Not this show's host token (a mistyped one, or one rotated since): ask for it again.
    // Said first, before anything else of the studio shows: the dialog opens over it all.
    sessionStorage.removeItem(TOKEN_KEY);
    $("token-problem").textContent = t("studio.token.wrong");
    $("token-input").value = "";
    state.token = await hostToken();
    $("token-problem").textContent = "";
    room.connect(state.token);
  } else if (code === CLOSE_NO_SHOW) {
    toast(t("studio.no_show"));
  } else {
    toast(t("studio.cannot_open"));
  }
}

async function main() {
  translatePage();
  $("language-slot").replaceWith(languageSwitch());
  setUpTabs();
  // The banner is drawn in English by the shared helper; it is said in the page's language here.
  testModeBanner().then(() => {
    const banner = document.querySelector(".test-mode-banner");
    if (banner) banner.textContent = t("test.banner");
  });
  if (!showId) return;
  state.token = await hostToken();
  room.connect(state.token);
  await openCamera();
  setInterval(() => shared.show?.state === "live" && refreshStats(), 5000);
  setInterval(tickTimer, 1000);
}

main();
