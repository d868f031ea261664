// The buyer's orders on this device, across shows: what each became (paid, captured, shipped
// with carrier and tracking number, cancelled, refunded), from GET /api/me/orders.

import { api, el, errorText, money, VIEWER_KEY } from "./api.js";

const $ = (id) => document.getElementById(id);

// An order's state in the words a buyer uses.
function stateText(order) {
  if (order.shipment) return "Shipped";
  if (order.state === "refunded") return "Refunded";
  if (order.state === "cancelled") return "Cancelled";
  if (order.state === "declined") return "Payment declined";
  if (order.state === "expired") return "Not completed";
  if (order.state === "pending" || order.state === "authorized") return "Processing";
  if (order.returned_qty > 0) return "Partly refunded";
  if (order.payment_status === "due") return "Pay on delivery";
  if (["authorized", "captured", "paid"].includes(order.payment_status)) return "Paid";
  return "Confirmed";
}

function orderItem(order) {
  const when = new Date(order.created_at * 1000).toLocaleString();
  const shipment = order.shipment;
  return el("li", { class: "order-card", "data-order": order.id },
    el("div", { class: "order-top" },
      el("b", {}, `${order.qty} × ${order.title}`),
      el("span", { class: `badge state-${stateText(order).toLowerCase().replace(/ /g, "-")}` },
        stateText(order))),
    el("div", { class: "muted" },
      el("a", { href: `/watch/${encodeURIComponent(order.show_id)}` }, order.show_title),
      ` · ${when}`),
    el("div", {}, money(order.total),
      order.refunded.amount > 0 ? ` · ${money(order.refunded)} refunded` : "",
      order.test ? " · test payment, not real money" : ""),
    order.payment_status === "authorized" && !order.shipment
      ? el("div", { class: "muted" }, "Your card is charged when the show ends.") : null,
    shipment ? el("div", { class: "tracking" },
      `${shipment.carrier}: `, el("b", { class: "tracking-number" }, shipment.tracking_number),
      ` · shipped ${new Date(shipment.shipped_at * 1000).toLocaleDateString()}`) : null);
}

async function main() {
  const status = $("orders-status");
  const viewer = JSON.parse(localStorage.getItem(VIEWER_KEY) || "null");
  if (!viewer || !viewer.token) {
    status.textContent = "No orders on this device yet. Orders you place while watching a show appear here.";
    return;
  }
  try {
    const orders = await api("GET", "/api/me/orders", { token: viewer.token });
    $("orders").replaceChildren(...orders.map(orderItem));
    status.textContent = orders.length ? "" : "No orders on this device yet.";
    status.hidden = orders.length > 0;
  } catch (err) {
    status.textContent = `Your orders could not be loaded: ${errorText(err)}`;
  }
}

main();
