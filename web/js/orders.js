// The buyer's orders on this device, across shows: what each became (paid, captured, shipped
// with carrier and tracking number, cancelled, refunded), from GET /api/me/orders.

import { api, el, errorText, money, VIEWER_KEY } from "./api.js";
import { addStrings, formatTime, languageSwitch, t, translatePage } from "./i18n.js";
import ORDERS from "./strings/orders.js";

addStrings(ORDERS);

const $ = (id) => document.getElementById(id);

// An order's state in the words a buyer uses: the key of its words (also its badge's class).
function stateOf(order) {
  if (order.shipment) return "shipped";
  if (order.state === "refunded") return "refunded";
  if (order.state === "cancelled") return "cancelled";
  if (order.state === "declined") return "declined";
  if (order.state === "expired") return "expired";
  if (order.state === "pending" || order.state === "authorized") return "processing";
  if (order.returned_qty > 0) return "partly-refunded";
  if (order.payment_status === "due") return "pay-on-delivery";
  if (["authorized", "captured", "paid"].includes(order.payment_status)) return "paid";
  return "confirmed";
}

function orderItem(order) {
  const shipment = order.shipment;
  const state = stateOf(order);
  return el("li", { class: "order-card", "data-order": order.id },
    el("div", { class: "order-top" },
      el("b", {}, t("orders.line", { qty: order.qty, title: order.title })),
      el("span", { class: `badge state-${state}` }, t(`orders.state.${state}`))),
    el("div", { class: "muted" },
      el("a", { href: `/watch/${encodeURIComponent(order.show_id)}` }, order.show_title),
      " · ", el("time", { datetime: new Date(order.created_at * 1000).toISOString() },
        formatTime(order.created_at))),
    el("div", {}, money(order.total),
      order.refunded.amount > 0 ? ` · ${t("orders.refunded", { amount: money(order.refunded) })}` : "",
      order.test ? ` · ${t("orders.test")}` : ""),
    order.payment_status === "authorized" && !order.shipment
      ? el("div", { class: "muted" }, t("orders.charged_at_end")) : null,
    shipment ? el("div", { class: "tracking" },
      `${shipment.carrier}: `, el("b", { class: "tracking-number" }, shipment.tracking_number),
      ` · ${t("orders.shipped_on", { date: formatTime(shipment.shipped_at, "date") })}`) : null);
}

async function main() {
  translatePage();
  $("language-slot").replaceWith(languageSwitch());
  const status = $("orders-status");
  const viewer = JSON.parse(localStorage.getItem(VIEWER_KEY) || "null");
  if (!viewer || !viewer.token) {
    status.textContent = t("orders.none_yet");
    return;
  }
  try {
    const orders = await api("GET", "/api/me/orders", { token: viewer.token });
    $("orders").replaceChildren(...orders.map(orderItem));
    status.textContent = orders.length ? "" : t("orders.none");
    status.hidden = orders.length > 0;
  } catch (err) {
    status.textContent = t("orders.failed", { reason: errorText(err) });
  }
}

main();
