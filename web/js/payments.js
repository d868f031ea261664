// How a buyer pays: the providers this shop accepts (GET /api/payments), the choice between
// them in the checkout form, card payments through Stripe.js, and the test-mode banner.
//
// Card details go from Stripe's card element straight to Stripe; livesale only ever receives
// the token Stripe.js makes from them. Stripe.js is loaded only when the shop takes cards.

import { api, el } from "./api.js";
import { addStrings, t } from "./i18n.js";
import PAYMENTS from "./strings/payments.js";

addStrings(PAYMENTS);

// The providers a page can draw; each in words (`pay.<name>`), as the buyer chooses it.
const PROVIDERS = new Set(["stripe", "manual", "test"]);

let config = null;

// What the shop accepts, asked once per page: {providers: [{name, publishable_key, js_url}],
// test_mode}. A failed answer is asked again on the next call.
export function paymentConfig() {
  if (!config) {
    config = api("GET", "/api/payments").catch((err) => {
      config = null;
      throw err;
    });
  }
  return config;
}

// While the test provider is on, every page says so at its top. Once the page knows, its
// <body data-test-mode> says "true" or "false".
export async function testModeBanner() {
  let payments;
  try {
    payments = await paymentConfig();
  } catch {
    return; // the page reports the server being unreachable elsewhere
  }
  document.body.dataset.testMode = String(Boolean(payments.test_mode));
  if (!payments.test_mode || document.querySelector(".test-mode-banner")) return;
  document.body.prepend(el("div", { class: "test-mode-banner", role: "status" },
    t("test.banner")));
}

// Stripe.js from `url`, as a classic script added now: Stripe asks that it be loaded from its
// own address, never bundled or copied.
function loadScript(url) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = url;
    script.async = true;
    script.addEventListener("load", () => {
      if (typeof window.Stripe === "function") resolve(window.Stripe);
      else reject(new Error(t("pay.stripe_js_failed")));
    });
    script.addEventListener("error", () => reject(new Error(t("pay.stripe_js_failed"))));
    document.head.append(script);
  });
}

// The card element of Stripe.js, mounted in `container`.
class Card {
  static async mount(info, container) {
    const Stripe = await loadScript(info.js_url);
    const stripe = Stripe(info.publishable_key);
    const element = stripe.elements().create("card", {
      style: {
        base: { color: "#f4f4f6", fontSize: "16px", "::placeholder": { color: "#a0a0ab" } },
        invalid: { color: "#ff6b81" },
      },
    });
    element.mount(container);
    return new Card(stripe, element);
  }

  constructor(stripe, element) {
    this.stripe = stripe;
    this.element = element;
  }

  // A token for the card as typed; throws an Error whose message is for the buyer.
  async token() {
    let result;
    try {
      result = await this.stripe.createToken(this.element);
    } catch {
      throw new Error(t("pay.enter_card"));
    }
    if (result.error || !result.token) {
      throw new Error(result.error?.message || t("pay.check_card"));
    }
    return result.token.id;
  }

  // Forget the card typed (after a payment went through).
  clear() {
    if (typeof this.element.clear === "function") this.element.clear();
  }

  // The bank's own check (3-D Secure) in Stripe's window; the error in words, or "".
  async authenticate(clientSecret) {
    try {
      const result = await this.stripe.confirmCardPayment(clientSecret);
      return result?.error ? result.error.message || t("pay.bank_refused") : "";
    } catch (err) {
      return err?.message || t("pay.bank_refused");
    }
  }
}

// The "Pay with" part of the checkout form: one radio per provider the shop accepts, and for
// the chosen one its panel (the card element, the test token, or what paying later means).
export class PaymentChoice {
  // `form`: the checkout form, holding #pay-options, #pay-stripe, #pay-test, #pay-manual,
  // #card-element and #card-token. `onChange(name)`: the buyer chose another provider.
  constructor(form, { onChange = () => {} } = {}) {
    this.form = form;
    this.onChange = onChange;
    this.providers = [];
    this.card = null;
    this.cardProblem = "";
    this.loading = null;
  }

  // Ask the server what it accepts and draw the choice (once; again after a failure).
  // Throws an Error in words when the server cannot say.
  load() {
    if (!this.loading) {
      this.loading = this.draw().catch((err) => {
        this.loading = null;
        throw err;
      });
    }
    return this.loading;
  }

  async draw() {
    const payments = await paymentConfig();
    this.providers = payments.providers.filter((p) => PROVIDERS.has(p.name));
    const options = this.form.querySelector("#pay-options");
    options.replaceChildren(...this.providers.map((provider, n) =>
      el("label", { class: "pay-option" },
        el("input", {
          type: "radio", name: "provider", value: provider.name, checked: n === 0,
          onchange: () => this.show(),
        }),
        el("span", {}, t(`pay.${provider.name}`)))));
    this.show();
    const stripe = this.providers.find((p) => p.name === "stripe");
    if (stripe) {
      try {
        this.card = await Card.mount(stripe, this.form.querySelector("#card-element"));
      } catch (err) {
        this.cardProblem = t("pay.cards_unavailable_why", { why: err.message });
        const other = this.form.querySelector('input[name="provider"]:not([value="stripe"])');
        if (other && this.chosen === "stripe") other.checked = true;
      }
      this.show();
    }
  }

  // Whether the shop takes `name` (and, for cards, Stripe.js is running).
  offers(name) {
    return this.providers.some((p) => p.name === name) && (name !== "stripe" || this.card !== null);
  }

  // Choose `name`, when it is offered.
  choose(name) {
    const input = this.form.querySelector(`input[name="provider"][value="${CSS.escape(name)}"]`);
    if (!input) return;
    input.checked = true;
    this.show();
  }

  // The provider chosen now, or "".
  get chosen() {
    return this.form.querySelector('input[name="provider"]:checked')?.value || "";
  }

  // Show the panel of the chosen provider, hide the others.
  show() {
    const chosen = this.chosen;
    const stripe = this.form.querySelector("#pay-stripe");
    stripe.hidden = chosen !== "stripe";
    stripe.querySelector(".card-problem").textContent = this.cardProblem;
    this.form.querySelector("#pay-test").hidden = chosen !== "test";
    this.form.querySelector("#card-token").required = chosen === "test";
    this.form.querySelector("#pay-manual").hidden = chosen !== "manual";
    this.onChange(chosen);
  }

  // True when the chosen provider can take the payment now.
  get ready() {
    const chosen = this.chosen;
    return Boolean(chosen) && (chosen !== "stripe" || this.card !== null);
  }

  // The checkout's `payment`: {provider, token}. For a card this asks Stripe.js for a token;
  // throws an Error in words when the card cannot be used.
  async payment() {
    const provider = this.chosen;
    switch (provider) {
      case "stripe":
        if (!this.card) throw new Error(this.cardProblem || t("pay.cards_loading"));
        return { provider, token: await this.card.token() };
      case "test":
        return { provider, token: this.form.elements.token.value.trim() };
      case "manual":
        return { provider, token: "" };
      default:
        throw new Error(t("pay.choose"));
    }
  }

  // After a payment went through: the next checkout starts without this card typed in.
  reset() {
    if (this.card) this.card.clear();
  }

  // The bank's check of a card payment (the checkout's `next_action`); the error in words,
  // or "" when the buyer went through it. Either way the caller sends the checkout again and
  // the server asks Stripe what happened.
  authenticate(clientSecret) {
    if (!this.card) return Promise.resolve(t("pay.cards_unavailable"));
    return this.card.authenticate(clientSecret);
  }
}
