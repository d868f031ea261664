// The pages' languages: English and Simplified Chinese, chosen from the browser's languages,
// or from the switch in the page (remembered on this device).
//
// Each page adds its own table of strings (`web/js/strings/*.js`: {en: {...}, "zh-CN": {...}})
// with `addStrings`, and writes every word it shows through `t(key, vars)`. In the HTML,
// `data-i18n="key"` sets an element's text and `data-i18n-attr="placeholder:key aria-label:key"`
// its attributes; `translatePage()` fills them in. A table with `{name}` in a string takes
// `vars.name`; a key with `.one` and `.other` forms is chosen by `vars.n` and the language's
// plural rules. Money and times go through `Intl` in the same language.

import COMMON from "./strings/common.js";

const LANGUAGE_KEY = "livesale.lang";
export const LANGUAGES = { en: "English", "zh-CN": "简体中文" };

function pickLanguage() {
  try {
    const saved = localStorage.getItem(LANGUAGE_KEY);
    if (saved && saved in LANGUAGES) return saved;
  } catch {
    // storage off: the browser's languages decide
  }
  for (const wanted of navigator.languages || [navigator.language || "en"]) {
    const lower = wanted.toLowerCase();
    if (lower.startsWith("zh")) return "zh-CN";
    if (lower.startsWith("en")) return "en";
  }
  return "en";
}

/** The page's language, for `Intl` and the `lang` attribute. */
export const lang = pickLanguage();

const tables = { en: {}, "zh-CN": {} };

/** Add a page's strings: `{en: {key: text}, "zh-CN": {key: text}}`. */
export function addStrings(strings) {
  for (const [language, table] of Object.entries(strings)) Object.assign(tables[language], table);
}
addStrings(COMMON);

function lookup(key) {
  return tables[lang][key] ?? tables.en[key];
}

/** The text of `key` in the page's language, with `{name}` filled from `vars`. */
export function t(key, vars = {}) {
  let text = lookup(key);
  if (text === undefined && "n" in vars) {
    text = lookup(`${key}.${plurals().select(vars.n)}`) ?? lookup(`${key}.other`);
  }
  if (text === undefined) {
    console.warn("i18n: no text for", key);
    return key;
  }
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));
}

/** Whether a text for `key` exists (the server's problem types, say). */
export function has(key) {
  return lookup(key) !== undefined;
}

let pluralRules = null;
function plurals() {
  pluralRules = pluralRules || new Intl.PluralRules(lang);
  return pluralRules;
}

/** Fill in the `data-i18n` texts and `data-i18n-attr` attributes under `root`. */
export function translatePage(root = document) {
  document.documentElement.lang = lang;
  for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of root.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of node.dataset.i18nAttr.split(/\s+/).filter(Boolean)) {
      const [name, key] = pair.split(":");
      node.setAttribute(name, t(key));
    }
  }
}

/** A language switch: a select that remembers the choice and reloads the page in it. */
export function languageSwitch() {
  const select = document.createElement("select");
  select.className = "language-switch";
  select.setAttribute("aria-label", t("lang.label"));
  for (const [code, name] of Object.entries(LANGUAGES)) {
    const option = document.createElement("option");
    option.value = code;
    option.lang = code;
    option.textContent = name;
    option.selected = code === lang;
    select.append(option);
  }
  select.addEventListener("change", () => {
    try {
      localStorage.setItem(LANGUAGE_KEY, select.value);
    } catch {
      // not remembered; the reload below still shows it once
    }
    location.reload();
  });
  return select;
}

const dateFormats = new Map();

/** A moment (Unix seconds) in the page's language: `style` "datetime", "date" or "time". */
export function formatTime(seconds, style = "datetime") {
  let format = dateFormats.get(style);
  if (!format) {
    const options = style === "date" ? { dateStyle: "medium" }
      : style === "time" ? { timeStyle: "short" }
        : { dateStyle: "medium", timeStyle: "short" };
    format = new Intl.DateTimeFormat(lang, options);
    dateFormats.set(style, format);
  }
  return format.format(new Date(seconds * 1000));
}

const numberFormat = new Intl.NumberFormat(lang);

/** A count in the page's language (thousands separators). */
export function formatNumber(n) {
  return numberFormat.format(n);
}
