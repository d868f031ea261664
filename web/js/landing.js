// The landing page and the page of an unknown show: the server writes them in English with
// `data-i18n` keys and machine-readable times; this puts them in the reader's language.

import { addStrings, formatNumber, formatTime, languageSwitch, t, translatePage } from "./i18n.js";
import LANDING from "./strings/landing.js";

addStrings(LANDING);

// "Started 19:04" for today, "Starts 3 Dec 2026, 19:00" otherwise, in the reader's time zone.
function when(node) {
  const at = Date.parse(node.dateTime);
  if (Number.isNaN(at)) return;
  const today = new Date().toDateString() === new Date(at).toDateString();
  node.textContent = t(node.dataset.when, { time: formatTime(at / 1000, today ? "time" : "datetime") });
  node.title = formatTime(at / 1000);
}

function main() {
  translatePage();
  document.getElementById("language-slot")?.replaceWith(languageSwitch());
  const banner = document.querySelector(".test-mode-banner");
  if (banner) banner.textContent = t("test.banner");
  for (const node of document.querySelectorAll("[data-viewers]")) {
    const n = Number(node.dataset.viewers);
    node.textContent = t("landing.viewers", { n, count: formatNumber(n) });
  }
  for (const node of document.querySelectorAll("[data-host]")) {
    node.textContent = t("landing.with", { name: node.dataset.host });
  }
  for (const node of document.querySelectorAll("time[data-when]")) when(node);
}

main();
