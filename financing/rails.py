"""Payment rails: where money actually moves. Escompte's side of the Stripe model in
docs/financing.md, through the official ``stripe`` SDK.

- An SME is a Stripe Connect account that only receives money (platform-controlled, no
  dashboard, manual payouts, its IBAN as external account) and a Customer with a SEPA
  Direct Debit mandate for repayments.
- Disbursing: a Transfer from the platform balance to the SME's account, then a Payout to
  its IBAN. Repaying: a PaymentIntent on the mandate.
- Every call carries an idempotency key derived from our own ids
  (``escompte:payout:adv_…``), so a retry after a timeout or a crash never moves money
  twice.

Errors are sorted in two: ``RailUnavailable`` (timeout, connection, 5xx, rate limit: try
again later with the same key) and ``RailRefused`` (the provider said no: a final answer
with its code).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

import stripe

from escompte.concurrency import waiting_elsewhere
from escompte.financing.stripe_http import KeptAliveClient
from escompte.settings import Settings


class RailError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class RailUnavailable(RailError):
    """Try again later with the same idempotency key."""


class RailRefused(RailError):
    """A final refusal (insufficient balance, closed account, invalid IBAN…)."""


class RailNotConfigured(RailError):
    pass


@dataclass(frozen=True, slots=True)
class Result:
    id: str
    status: str
    arrival_date: date | None = None
    charge_id: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    metadata: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Profile:
    account_id: str
    bank_account_id: str | None
    iban_last4: str | None
    customer_id: str
    payment_method_id: str | None
    mandate_id: str | None
    mandate_status: str


def _call(fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    try:
        with waiting_elsewhere():
            obj = fn(*args, **kwargs)
        result: dict[str, Any] = obj.to_dict()
        return result
    except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
        raise RailUnavailable("provider_unreachable", str(exc.user_message or exc)) from None
    except stripe.IdempotencyError as exc:
        if exc.http_status == 409:  # the same key is still being processed
            raise RailUnavailable("request_in_progress", str(exc.user_message or exc)) from None
        raise RailRefused("idempotency_error", str(exc.user_message or exc)) from None
    except stripe.StripeError as exc:
        status = exc.http_status or 500
        if status == 409:  # the same idempotency key is still being processed: try again later
            raise RailUnavailable("request_in_progress", str(exc.user_message or exc)) from None
        code = exc.code or (exc.error.code if exc.error else None) or "provider_error"
        if status >= 500 or status == 429:
            raise RailUnavailable(str(code), str(exc.user_message or exc)) from None
        raise RailRefused(str(code), str(exc.user_message or exc)) from None


def _date(ts: int | None) -> date | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).date()


class StripeRail:
    name = "stripe"

    def __init__(self, api_key: str, api_base: str, timeout_seconds: float = 10.0) -> None:
        self.client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base},
            max_network_retries=0,
            http_client=KeptAliveClient(timeout_seconds),
        )

    # --- onboarding --------------------------------------------------------------------

    def create_profile(
        self,
        *,
        company_id: str,
        legal_name: str,
        email: str,
        iban: str,
        holder: str,
        mandate_ip: str,
        mandate_user_agent: str,
        accepted_at: datetime,
    ) -> Profile:
        v1 = self.client.v1
        key = f"escompte:profile:{company_id}:{iban[-4:]}"
        account = _call(
            v1.accounts.create,
            params={
                "country": "FR",
                "business_type": "company",
                "email": email,
                "business_profile": {"name": legal_name},
                "controller": {
                    "stripe_dashboard": {"type": "none"},
                    "requirement_collection": "application",
                    "fees": {"payer": "application"},
                    "losses": {"payments": "application"},
                },
                "capabilities": {"transfers": {"requested": True}},
                "settings": {"payouts": {"schedule": {"interval": "manual"}}},
                "metadata": {"company": company_id},
            },
            options={"idempotency_key": f"{key}:account"},
        )
        bank = _call(
            v1.accounts.external_accounts.create,
            account["id"],
            params={
                "external_account": {
                    "object": "bank_account",
                    "country": "FR",
                    "currency": "eur",
                    "account_number": iban,
                    "account_holder_name": holder,
                },
            },
            options={"idempotency_key": f"{key}:bank"},
        )
        customer = _call(
            v1.customers.create,
            params={"name": legal_name, "email": email, "metadata": {"company": company_id}},
            options={"idempotency_key": f"{key}:customer"},
        )
        setup = _call(
            v1.setup_intents.create,
            params={
                "customer": customer["id"],
                "payment_method_types": ["sepa_debit"],
                "usage": "off_session",
                "confirm": True,
                "payment_method_data": {
                    "type": "sepa_debit",
                    "sepa_debit": {"iban": iban},
                    "billing_details": {"name": holder, "email": email},
                },
                "mandate_data": {
                    "customer_acceptance": {
                        "type": "online",
                        "accepted_at": int(accepted_at.timestamp()),
                        "online": {"ip_address": mandate_ip, "user_agent": mandate_user_agent},
                    }
                },
                "metadata": {"company": company_id},
            },
            options={"idempotency_key": f"{key}:mandate"},
        )
        mandate_id = setup.get("mandate")
        mandate_status = "pending"
        if mandate_id:
            mandate = _call(v1.mandates.retrieve, mandate_id)
            mandate_status = str(mandate["status"])
        return Profile(
            account_id=account["id"],
            bank_account_id=bank["id"],
            iban_last4=bank.get("last4") or iban[-4:],
            customer_id=customer["id"],
            payment_method_id=setup.get("payment_method"),
            mandate_id=mandate_id,
            mandate_status=mandate_status if setup["status"] == "succeeded" else "inactive",
        )

    # --- disbursing ----------------------------------------------------------------------

    def transfer(self, *, amount_cents: int, destination: str, key: str, metadata: dict[str, str]) -> Result:
        tr = _call(
            self.client.v1.transfers.create,
            params={
                "amount": amount_cents,
                "currency": "eur",
                "destination": destination,
                "transfer_group": metadata.get("advance", ""),
                "metadata": metadata,
            },
            options={"idempotency_key": key},
        )
        return Result(tr["id"], "succeeded")

    def payout(self, *, amount_cents: int, account: str, key: str, metadata: dict[str, str]) -> Result:
        po = _call(
            self.client.v1.payouts.create,
            params={"amount": amount_cents, "currency": "eur", "method": "standard", "metadata": metadata},
            options={"idempotency_key": key, "stripe_account": account},
        )
        return self._payout(po)

    def retrieve_payout(self, payout_id: str, account: str) -> Result:
        po = _call(self.client.v1.payouts.retrieve, payout_id, options={"stripe_account": account})
        return self._payout(po)

    @staticmethod
    def _payout(po: dict[str, Any]) -> Result:
        return Result(
            po["id"],
            str(po["status"]),
            arrival_date=_date(po.get("arrival_date")),
            failure_code=po.get("failure_code"),
            failure_message=po.get("failure_message"),
            metadata=dict(po.get("metadata") or {}),
        )

    def reverse_transfer(self, *, transfer_id: str, amount_cents: int, key: str) -> Result:
        rev = _call(
            self.client.v1.transfers.reversals.create,
            transfer_id,
            params={"amount": amount_cents},
            options={"idempotency_key": key},
        )
        return Result(rev["id"], "succeeded")

    # --- repaying ---------------------------------------------------------------------------

    def debit(
        self,
        *,
        amount_cents: int,
        customer: str,
        payment_method: str,
        mandate: str,
        key: str,
        metadata: dict[str, str],
        target_date: date | None = None,
    ) -> Result:
        params: dict[str, Any] = {
            "amount": amount_cents,
            "currency": "eur",
            "customer": customer,
            "payment_method": payment_method,
            "payment_method_types": ["sepa_debit"],
            "mandate": mandate,
            "off_session": True,
            "confirm": True,
            "metadata": metadata,
        }
        if target_date is not None:
            params["payment_method_options"] = {"sepa_debit": {"target_date": target_date.isoformat()}}
        pi = _call(self.client.v1.payment_intents.create, params=params, options={"idempotency_key": key})
        return self._intent(pi)

    def retrieve_payment_intent(self, intent_id: str) -> Result:
        return self._intent(_call(self.client.v1.payment_intents.retrieve, intent_id))

    @staticmethod
    def _intent(pi: dict[str, Any]) -> Result:
        error = pi.get("last_payment_error") or {}
        return Result(
            pi["id"],
            str(pi["status"]),
            charge_id=pi.get("latest_charge"),
            failure_code=error.get("code"),
            failure_message=error.get("message"),
            metadata=dict(pi.get("metadata") or {}),
        )

    def retrieve_charge(self, charge_id: str) -> dict[str, Any]:
        charge = _call(self.client.v1.charges.retrieve, charge_id)
        return {
            "id": charge["id"],
            "status": charge["status"],
            "disputed": bool(charge.get("disputed")),
            "payment_intent": charge.get("payment_intent"),
            "amount": charge.get("amount"),
        }

    # --- reporting ------------------------------------------------------------------------

    def balance_transactions(self, limit: int = 10_000) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        starting_after: str | None = None
        while len(out) < limit:
            params: dict[str, Any] = {"limit": 100}
            if starting_after:
                params["starting_after"] = starting_after
            page = _call(self.client.v1.balance_transactions.list, params=params)
            for bt in page["data"]:
                out.append(
                    {
                        "id": bt["id"],
                        "amount": int(bt["amount"]),
                        "currency": str(bt["currency"]).upper(),
                        "type": str(bt["type"]),
                        "source": bt.get("source"),
                    }
                )
            if not page["has_more"] or not page["data"]:
                break
            starting_after = page["data"][-1]["id"]
        return out

    def available_balance_cents(self) -> int:
        balance = _call(self.client.v1.balance.retrieve)
        return sum(
            int(b["amount"])
            for part in ("available", "pending")
            for b in balance[part]
            if b["currency"] == "eur"
        )


@lru_cache(maxsize=8)
def _rail(api_key: str, api_base: str, timeout: float) -> StripeRail:
    return StripeRail(api_key, api_base, timeout)


def from_settings(settings: Settings) -> StripeRail:
    if not settings.stripe_api_key:
        raise RailNotConfigured(
            "payments_not_configured",
            "ESCOMPTE_STRIPE_API_KEY is not set: advances cannot be disbursed or repaid.",
        )
    return _rail(settings.stripe_api_key, settings.stripe_api_base, settings.stripe_timeout_seconds)
