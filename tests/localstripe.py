"""localstripe, the stateful Stripe emulator from PyPI, as a real process on 127.0.0.1.

The Stripe provider talks to it through the official ``stripe`` package exactly as it would to
Stripe (``--stripe-api-base``), and the watch page loads its stand-in Stripe.js from
``/js.stripe.com/v3/``. The helpers here do what a browser or Stripe's dashboard would: make
card tokens with the publishable key, complete 3-D Secure, deliver webhooks.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

SECRET_KEY = "sk_test_livesale_secret_0123456789"
PUBLISHABLE_KEY = "pk_test_livesale_publishable_0123456789"
WEBHOOK_SECRET = "whsec_livesale_webhook_0123456789"

#: localstripe's test cards (its resources.py): what each does when charged.
CARDS = {
    "visa": "4242424242424242",
    "declined": "4000000000000341",  # attaches, then the charge is declined
    "3ds": "4000002500003155",  # needs 3-D Secure, then succeeds
}


@dataclass
class LocalStripe:
    """One localstripe process and what tests do with it."""

    store: Path
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    client: httpx.Client = field(init=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def js_url(self) -> str:
        return f"{self.url}/js.stripe.com/v3/"

    def serve_args(self, *providers: str) -> list[str]:
        """``livesale serve`` options taking cards through this emulator (plus ``providers``)."""
        return [
            "--payments",
            ",".join(("stripe", *providers)),
            "--stripe-secret-key",
            SECRET_KEY,
            "--stripe-publishable-key",
            PUBLISHABLE_KEY,
            "--stripe-webhook-secret",
            WEBHOOK_SECRET,
            "--stripe-api-base",
            self.url,
        ]

    def start(self) -> LocalStripe:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.localstripe_server", str(self.store)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        self.proc.stdout.close()  # it prints nothing after its port
        if not line.strip().isdigit():
            raise RuntimeError(f"localstripe did not start: {line!r}")
        self.port = int(line)
        self.client = httpx.Client(base_url=self.url, timeout=30)
        deadline = time.monotonic() + 30
        while True:
            try:
                if self.client.get("/js.stripe.com/v3/").status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("localstripe did not answer within 30 s")
            time.sleep(0.05)

    def stop(self) -> None:
        self.client.close()
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()

    def flush(self) -> None:
        """Forget every object (between tests)."""
        self.client.delete("/_config/data").raise_for_status()

    def send_webhooks_to(self, url: str, secret: str = WEBHOOK_SECRET) -> None:
        """Where localstripe delivers its (signed) events, as set in Stripe's dashboard."""
        self.client.post(
            "/_config/webhooks/livesale", data={"url": url, "secret": secret}
        ).raise_for_status()

    def token(self, card: str = "visa") -> str:
        """A card token, made with the publishable key as Stripe.js does in the browser."""
        answer = self.client.post(
            "/v1/tokens",
            data={
                "card[number]": CARDS.get(card, card),
                "card[exp_month]": "12",
                "card[exp_year]": "2030",
                "card[cvc]": "123",
                "key": PUBLISHABLE_KEY,
            },
        )
        answer.raise_for_status()
        return str(answer.json()["id"])

    def authenticate(self, intent_id: str, client_secret: str, success: bool = True) -> Any:
        """Complete (or fail) 3-D Secure, as Stripe.js ``confirmCardPayment`` does."""
        answer = self.client.post(
            f"/v1/payment_intents/{intent_id}/_authenticate",
            params={"success": "true" if success else "false"},
            json={"key": PUBLISHABLE_KEY, "client_secret": client_secret},
        )
        answer.raise_for_status()
        return answer.json()

    def intent(self, intent_id: str) -> Any:
        """A PaymentIntent as Stripe's API shows it (the merchant's dashboard view)."""
        answer = self.client.get(
            f"/v1/payment_intents/{intent_id}",
            headers={"Authorization": f"Bearer {SECRET_KEY}"},
        )
        answer.raise_for_status()
        return answer.json()

    def charge(self, intent_id: str) -> Any:
        """The latest charge of a PaymentIntent."""
        charge = self.intent(intent_id)["latest_charge"]
        charge_id = charge["id"] if isinstance(charge, dict) else charge
        answer = self.client.get(
            f"/v1/charges/{charge_id}", headers={"Authorization": f"Bearer {SECRET_KEY}"}
        )
        answer.raise_for_status()
        return answer.json()

    def refund(self, intent_id: str, amount: int | None = None) -> Any:
        """A refund made in Stripe's dashboard, outside livesale."""
        data = {"payment_intent": intent_id}
        if amount is not None:
            data["amount"] = str(amount)
        answer = self.client.post(
            "/v1/refunds", data=data, headers={"Authorization": f"Bearer {SECRET_KEY}"}
        )
        answer.raise_for_status()
        return answer.json()
