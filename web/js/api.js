// HTTP helpers shared by the pages: JSON calls whose RFC 9457 problems become ApiErrors.

import { has, lang, t } from "./i18n.js";

// Where a device keeps its viewer (id, nickname, token): the watch page signs up once, the
// orders page reads it.
export const VIEWER_KEY = "livesale.viewer";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
    // The last segment of the problem type: "sold-out", "limit", "payment-declined", ...
    this.kind = (problem.type || "").split("/").pop();
  }
}

export async function api(method, path, { token, body } = {}) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new ApiError(0, { type: "unreachable", detail: t("net.unreachable") });
  }
  return readResponse(response);
}

export async function readResponse(response) {
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { detail: text.slice(0, 200) };
  }
  if (!response.ok) throw new ApiError(response.status, data || {});
  return data;
}

const formats = new Map();

// {amount: 1990, currency: "EUR"} -> "€19.90" in the page's language.
export function money(value) {
  if (!value) return "";
  let format = formats.get(value.currency);
  if (!format) {
    format = new Intl.NumberFormat(lang, { style: "currency", currency: value.currency });
    formats.set(value.currency, format);
  }
  const digits = format.resolvedOptions().maximumFractionDigits;
  return format.format(value.amount / 10 ** digits);
}

// A random key for one buy click: a retried click reuses it and gets the same hold.
export function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function showIdFromPath() {
  return decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
}

let toastTimer = 0;

// A short message in the page's #toast element, gone after a few seconds.
export function toast(text) {
  const node = document.getElementById("toast");
  node.textContent = text;
  node.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (node.hidden = true), 4000);
}

// An error in words for a person, in the page's language: the problem type's plain text where
// there is one (never a validator's internals), else the problem's detail or the error's message.
export function errorText(err) {
  if (err instanceof ApiError) {
    if (err.status === 0) return t("net.unreachable");
    return has(`problem.${err.kind}`) ? t(`problem.${err.kind}`) : err.message;
  }
  return String(err && err.message ? err.message : err);
}
