"""The local fake Stripe, driven through the real ``stripe`` SDK over HTTP (no database).

The SDK forms used here are the product's: ``StripeClient(..., base_addresses={"api": url},
max_network_retries=0, http_client=KeptAliveClient(timeout))`` and
``client.v1.<resource>.create(params={...}, options={"idempotency_key": ..., "stripe_account": ...})``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe

from escompte.financing.stripe_fake import FakeStripe, parse_form, sign
from escompte.financing.stripe_http import KeptAliveClient

SECRET = "whsec_test_fake_suite"
IBAN = "FR1420041010050500013M02606"
OTHER_IBAN = "FR7630006000011234567890189"
BAD_IBAN = "FR7630006000011234567890180"  # wrong check digits
PLATFORM_CENTS = 1_000_000_00


# --------------------------------------------------------------------------- fixtures


class Receiver:
    """A tiny webhook endpoint: records (body, Stripe-Signature) and answers ``status``."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, str]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.received.append((body, self.headers.get("Stripe-Signature", "")))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/stripe"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def events(self, secret: str = SECRET) -> list[stripe.Event]:
        return [stripe.Webhook.construct_event(body, header, secret) for body, header in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeStripe]:
    with FakeStripe(platform_balance_cents=PLATFORM_CENTS, webhook_secret=SECRET, seed=7) as fake:
        yield fake


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def fake(fake_server: FakeStripe, receiver: Receiver) -> FakeStripe:
    fake_server.reset()
    fake_server.auto_deliver = False
    fake_server.set_webhook(None, SECRET)
    receiver.received.clear()
    receiver.status = 200
    return fake_server


def _client(fake: FakeStripe, timeout: float = 5.0) -> stripe.StripeClient:
    return stripe.StripeClient(
        "sk_test_x",
        base_addresses={"api": fake.base_url},
        max_network_retries=0,
        http_client=KeptAliveClient(timeout),
    )


@pytest.fixture(scope="module")
def sdk(fake_server: FakeStripe) -> stripe.StripeClient:
    return _client(fake_server)


def onboard(sdk: stripe.StripeClient, *, iban: str | None = IBAN) -> str:
    params: dict[str, Any] = {
        "country": "FR",
        "business_type": "company",
        "controller": {
            "stripe_dashboard": {"type": "none"},
            "requirement_collection": "application",
            "fees": {"payer": "application"},
            "losses": {"payments": "application"},
        },
        "capabilities": {"transfers": {"requested": True}},
        "settings": {"payouts": {"schedule": {"interval": "manual"}}},
        "metadata": {"company": "co_1"},
    }
    if iban is not None:
        params["external_account"] = {
            "object": "bank_account",
            "country": "FR",
            "currency": "eur",
            "account_number": iban,
            "account_holder_name": "Atelier Dupont SAS",
        }
    return sdk.v1.accounts.create(params=params).id


def debtor(sdk: stripe.StripeClient) -> stripe.SetupIntent:
    customer = sdk.v1.customers.create(
        params={"name": "Atelier Dupont SAS", "email": "compta@dupont.example"}
    )
    return sdk.v1.setup_intents.create(
        params={
            "customer": customer.id,
            "payment_method_types": ["sepa_debit"],
            "usage": "off_session",
            "confirm": True,
            "payment_method_data": {
                "type": "sepa_debit",
                "sepa_debit": {"iban": IBAN},
                "billing_details": {"name": "Atelier Dupont SAS", "email": "compta@dupont.example"},
            },
            "mandate_data": {
                "customer_acceptance": {
                    "type": "online",
                    "online": {"ip_address": "203.0.113.7", "user_agent": "Mozilla/5.0"},
                }
            },
        },
        options={"idempotency_key": "escompte:mandate:co_1"},
    )


def debit(sdk: stripe.StripeClient, seti: stripe.SetupIntent, amount: int = 50_000) -> stripe.PaymentIntent:
    return sdk.v1.payment_intents.create(
        params={
            "amount": amount,
            "currency": "eur",
            "customer": str(seti.customer),
            "payment_method": str(seti.payment_method),
            "payment_method_types": ["sepa_debit"],
            "mandate": str(seti.mandate),
            "off_session": True,
            "confirm": True,
            "metadata": {"advance": "adv_1"},
        },
        options={"idempotency_key": f"escompte:debit:adv_1:{amount}"},
    )


def types(fake: FakeStripe) -> list[str]:
    return [e["type"] for e in fake.events]


# --------------------------------------------------------------------------- tests


class TestParseForm:
    def test_nested_keys_lists_and_blanks(self) -> None:
        body = (
            "metadata[advance]=adv_1&capabilities[transfers][requested]=true"
            "&payment_method_types[0]=sepa_debit&expand[]=a&expand[]=b&description="
            "&items[0][price]=p1&items[1][price]=p2&name=A+B%26C"
        )
        assert parse_form(body) == {
            "metadata": {"advance": "adv_1"},
            "capabilities": {"transfers": {"requested": "true"}},
            "payment_method_types": ["sepa_debit"],
            "expand": ["a", "b"],
            "description": "",
            "items": [{"price": "p1"}, {"price": "p2"}],
            "name": "A B&C",
        }


class TestAuth:
    def test_a_missing_or_live_key_is_refused(self, fake: FakeStripe) -> None:
        r = httpx.get(f"{fake.base_url}/v1/balance")
        assert r.status_code == 401
        assert r.json()["error"]["type"] == "invalid_request_error"
        live = stripe.StripeClient("sk_live_x", base_addresses={"api": fake.base_url}, max_network_retries=0)
        with pytest.raises(stripe.AuthenticationError):
            live.v1.balance.retrieve()

    def test_an_unknown_connected_account_is_refused(
        self, fake: FakeStripe, sdk: stripe.StripeClient
    ) -> None:
        with pytest.raises(stripe.PermissionError):
            sdk.v1.balance.retrieve(options={"stripe_account": "acct_nope"})

    def test_an_unknown_route_is_a_stripe_404(self, fake: FakeStripe, sdk: stripe.StripeClient) -> None:
        with pytest.raises(stripe.InvalidRequestError) as err:
            sdk.raw_request("get", "/v1/unknown_things")
        assert err.value.http_status == 404


class TestAccounts:
    def test_account_with_its_bank_account_can_receive_and_pay_out(
        self, fake: FakeStripe, sdk: stripe.StripeClient
    ) -> None:
        account = sdk.v1.accounts.retrieve(onboard(sdk))
        assert account.id.startswith("acct_")
        assert account.capabilities is not None and account.capabilities.transfers == "active"
        assert account.payouts_enabled is True
        assert account.requirements is not None and account.requirements.currently_due == []
        bank = account.external_accounts.data[0]
        assert bank.id.startswith("ba_") and bank["last4"] == "2606" and bank["default_for_currency"]
        assert account.metadata["company"] == "co_1"
        event = fake.events[-1]
        assert event["type"] == "account.updated" and event["account"] == account.id
        assert event["data"]["previous_attributes"] == {"capabilities": {"transfers": "inactive"}}

    def test_a_bank_account_added_later_enables_payouts(
        self, fake: FakeStripe, sdk: stripe.StripeClient
    ) -> None:
        acct = onboard(sdk, iban=None)
        assert sdk.v1.accounts.retrieve(acct)["requirements"]["currently_due"] == ["external_account"]
        bank = sdk.v1.accounts.external_accounts.create(acct, params={"external_account": OTHER_IBAN})
        assert bank.object == "bank_account" and bank["last4"] == "0189"
        assert sdk.v1.accounts.retrieve(acct).payouts_enabled is True
        assert types(fake)[-2:] == ["account.external_account.created", "account.updated"]
        assert fake.events[-1]["data"]["previous_attributes"]["payouts_enabled"] is False

    def test_an_invalid_iban_is_refused_and_not_saved_under_the_key(
        self, fake: FakeStripe, sdk: stripe.StripeClient
    ) -> None:
        acct = onboard(sdk, iban=None)
        with pytest.raises(stripe.InvalidRequestError) as err:
            sdk.v1.accounts.external_accounts.create(
                acct, params={"external_account": BAD_IBAN}, options={"idempotency_key": "k-bank"}
            )
        assert err.value.code == "invalid_bank_account_iban"
        assert err.value.http_status == 400
        # a validation error is not saved: the same key works once the request is right
        bank = sdk.v1.accounts.external_accounts.create(
            acct, params={"external_account": BAD_IBAN[:-1] + "9"}, options={"idempotency_key": "k-bank"}
        )
        assert bank["last4"] == "0189"

    def test_a_restricted_account_refuses_transfers(self, fake: FakeStripe, sdk: stripe.StripeClient) -> None:
        acct = onboard(sdk)
        fake.restrict_account(acct)
        assert fake.events[-1]["data"]["object"]["requirements"]["disabled_reason"] == "requirements.past_due"
        with pytest.raises(stripe.InvalidRequestError) as err:
            sdk.v1.transfers.create(params={"amount": 100, "currency": "eur", "destination": acct})
        assert err.value.code == "insufficient_capabilities_for_transfer"
        fake.unrestrict_account(acct)
        assert (
            sdk.v1.transfers.create(params={"amount": 100, "currency": "eur", "destination": acct}).amount
            == 100
        )


class TestMandates:
    def test_a_confirmed_setup_intent_makes_an_active_multi_use_mandate(
        self, fake: FakeStripe, sdk: stripe.StripeClient
    ) -> None:
        seti = debtor(sdk)
        assert seti.status == "succeeded" and seti.usage == "off_session"
        mandate = sdk.v1.mandates.retrieve(str(seti.mandate))
        assert mandate.status == "active" and mandate.type == "multi_use"
        assert mandate.payment_method == seti.payment_method
        assert mandate.customer_acceptance.online is not None
        assert mandate.customer_acceptance.online.ip_address == "203.0.113.7"
        pm = sdk.v1.payment_methods.retrieve(str(seti.payment_method))
        assert pm.type == "sepa_debit" and pm.sepa_debit is not None and pm.sepa_debit.last4 == "2606"
        assert pm.customer == seti.customer
        assert sdk.v1.setup_intents.retrieve(seti.id).status == "succeeded"
        assert types(fake) == [
            "customer.created",
            "setup_intent.created",
            "payment_method.attached",
            "setup_intent.succeeded",
        ]

    def test_an_invalid_iban_fails_the_setup_intent(self, fake: FakeStripe, sdk: stripe.StripeClient) -> None:
        customer = sdk.v1.customers.create(params={"name": "X"})
        with pytest.raises(stripe.InvalidRequestError) as err:
            sdk.v1.setup_intents.create(
                params={
                    "customer": customer.id,
                    "confirm": True,
                    "payment_method_types": ["sepa_debit"],
                    "payment_method_data": {
                        "type": "sepa_debit",
                        "sepa_debit": {"iban": BAD_IBAN},
                        "billing_details": {"name": "X", "email": "x@example.com"},
                    },
                    "mandate_data": {"customer_acceptance": {"type": "offline"}},
                }
            )
        assert err.value.code == "invalid_bank_account_iban"
        assert err.value.param == "payment_method_data[sepa_debit][iban]"
        assert fake.objects("setup_intent") == []

    def test_a_revoked_mandate_refuses_debits(self, fake: FakeStripe, sdk: stripe.StripeClient) -> None:
        seti = debtor(sdk)
        fake.revoke_mandate(str(seti.mandate))
        assert fake.events[-1]["type"] == "mandate.updated"
        assert fake.events[-1]["data"]["previous_attributes"] == {"status": "active"}
        with pytest.raises(stripe.InvalidRequestError) as err:
            debit(sdk, seti)
        assert err.value.code == "payment_intent_mandate_invalid"


class TestDisbursement:
    def test_transfer_then_payout_on_the_connected_account(
        self, fake: FakeStripe, sdk: stripe.StripeClient
    ) -> None:
        acct = onboard(sdk)
        tr = sdk.v1.transfers.create(
            params={
                "amount": 1_200_000,
                "currency": "eur",
                "destination": acct,
                "transfer_group": "adv_1",
                "metadata": {"advance": "adv_1"},
            },
            options={"idempotency_key": "escompte:transfer:adv_1"},
        )
        assert tr.id.startswith("tr_") and tr.destination == acct and tr.transfer_group == "adv_1"
        assert str(tr.destination_payment).startswith("py_") and str(tr.balance_transaction).startswith(
            "txn_"
        )
        assert tr.reversed is False and tr.amount_reversed == 0
        assert sdk.v1.transfers.retrieve(tr.id).metadata["advance"] == "adv_1"
        assert fake.balance() == PLATFORM_CENTS - 1_200_000
        assert sdk.v1.balance.retrieve(options={"stripe_account": acct}).available[0].amount == 1_200_000

        po = sdk.v1.payouts.create(
            params={
                "amount": 1_200_000,
                "currency": "eur",
                "method": "standard",
                "metadata": {"advance": "adv_1"},
            },
            options={"idempotency_key": "escompte:payout:adv_1", "stripe_account": acct},
        )
        assert po.id.startswith("po_") and po.status == "pending"
        assert po.arrival_date == po.created + 2 * 86_400
        bank = sdk.v1.accounts.retrieve(acct).external_accounts.data[0]
        assert po.destination == bank.id
        assert sdk.v1.payouts.retrieve(po.id, options={"stripe_account": acct}).status == "pending"
        with pytest.raises(stripe.InvalidRequestError) as err:  # the payout lives on the connected account
            sdk.v1.payouts.retrieve(po.id)
        assert err.value.http_status == 404
        assert fake.balance(acct) == 0

        platform_bts = sdk.v1.balance_transactions.list(params={"type": "transfer"})
        assert [bt.source for bt in platform_bts.data] == [tr.id]
        assert platform_bts.data[0].amount == -1_200_000 and platform_bts.data[0].fee == 0
        acct_bts = sdk.v1.balance_transactions.list(options={"stripe_account": acct})
        assert [(bt.type, bt.amount) for bt in acct_bts.data] == [
            ("payout", -1_200_000),
            ("payment", 1_200_000),
        ]
        assert types(fake)[-2:] == ["transfer.created", "payout.created"]
        assert fake.events[-1]["account"] == acct
        assert fake.events[-1]["request"]["idempotency_key"] == "escompte:payout:adv_1"

    def test_insufficient_balances_raise_balance_insufficient(
        self, fake: FakeStripe, sdk: stripe.StripeClient
    ) -> None:
        acct = onboard(sdk)
        with pytest.raises(stripe.InvalidRequestError) as err:
            sdk.v1.transfers.create(
                params={"amount": PLATFORM_CENTS + 1, "currency": "eur", "destination": acct}
            )
        assert err.value.code == "balance_insufficient" and err.value.http_status == 400
        with pytest.raises(stripe.InvalidRequestError) as err:
            sdk.v1.payouts.create(params={"amount": 1, "currency": "eur"}, options={"stripe_account": acct})
        assert err.value.code == "balance_insufficient"
        assert fake.objects("transfer") == [] and fake.objects("payout", acct) == []
        assert fake.balance() == PLATFORM_CENTS

    def test_a_reversal_moves_the_money_back(self, fake: FakeStripe, sdk: stripe.StripeClient) -> None:
        acct = onboard(sdk)
        tr = sdk.v1.transfers.create(params={"amount": 10_000, "currency": "eur", "destination": acct})
        rev = sdk.v1.transfers.reversals.create(tr.id, params={"amount": 4_000})
        assert rev.id.startswith("trr_") and rev.transfer == tr.id
        after = sdk.v1.transfers.retrieve(tr.id)
        assert after.amount_reversed == 4_000 and after.reversed is False
        assert fake.balance() == PLATFORM_CENTS - 6_000 and fake.balance(acct) == 6_000
        assert fake.events[-1]["type"] == "transfer.reversed"
        assert fake.events[-1]["data"]["previous_attributes"]["amount_reversed"] == 0
        sdk.v1.transfers.reversals.create(tr.id)
        assert sdk.v1.transfers.retrieve(tr.id).reversed is True
        assert fake.balance() == PLATFORM_CENTS

    def test_top_up_adds_available_balance(self, fake: FakeStripe, sdk: stripe.StripeClient) -> None:
        fake.top_up(500)
        assert sdk.v1.balance.retrieve().available[0].amount == PLATFORM_CENTS + 500
        assert sdk.v1.balance_transactions.list(params={"type": "topup", "limit": 1}).data[0].amount == 500


class TestIdempotency:
    def test_a_replay_returns_the_first_answer_and_creates_once(
        self, fake: FakeStripe, sdk: stripe.StripeClient
    ) -> None:
        acct = onboard(sdk)
        params = {"amount": 700, "currency": "eur", "destination": acct, "metadata": {"advance": "adv_2"}}
        first = sdk.v1.transfers.create(params=params, options={"idempotency_key": "escompte:transfer:adv_2"})
        again = sdk.v1.transfers.create(params=params, options={"idempotency_key": "escompte:transfer:adv_2"})
        assert again.id == first.id
        assert again.last_response.headers["Idempotent-Replayed"] == "true"
        assert fake.calls[("POST", "/v1/transfers")] == 2
        assert fake.performed[("POST", "/v1/transfers")] == 1
        assert len(fake.objects("transfer")) == 1 and types(fake).count("transfer.created") == 1

    def test_the_same_key_with_other_params_is_an_idempotency_error(
        self, fake: FakeStripe, sdk: stripe.StripeClient
    ) -> None:
        acct = onboard(sdk)
        sdk.v1.transfers.create(
            params={"amount": 700, "currency": "eur", "destination": acct}, options={"idempotency_key": "k"}
        )
        with pytest.raises(stripe.IdempotencyError):
            sdk.v1.transfers.create(
                params={"amount": 701, "currency": "eur", "destination": acct},
                options={"idempotency_key": "k"},
            )

    def test_an_error_is_replayed_even_once_the_cause_is_gone(
        self, fake: FakeStripe, sdk: stripe.StripeClient
    ) -> None:
        acct = onboard(sdk)
        params = {"amount": 5_000, "currency": "eur"}
        options: Any = {"idempotency_key": "escompte:payout:adv_3", "stripe_account": acct}
        with pytest.raises(stripe.InvalidRequestError):
            sdk.v1.payouts.create(params=params, options=options)
        sdk.v1.transfers.create(params={"amount": 5_000, "currency": "eur", "destination": acct})
        with pytest.raises(stripe.InvalidRequestError) as err:  # Stripe saved the first (error) answer
            sdk.v1.payouts.create(params=params, options=options)
        assert err.value.code == "balance_insufficient"
        assert (
            sdk.v1.payouts.create(params=params, options={**options, "idempotency_key": "new"}).amount
            == 5_000
        )

    def test_keys_are_scoped_per_account(self, fake: FakeStripe, sdk: stripe.StripeClient) -> None:
        a, b = onboard(sdk), onboard(sdk)
        for acct in (a, b):
            sdk.v1.transfers.create(params={"amount": 100, "currency": "eur", "destination": acct})
        ids = {
            sdk.v1.payouts.create(
                params={"amount": 100, "currency": "eur"},
                options={"idempotency_key": "po", "stripe_account": acct},
            ).id
            for acct in (a, b)
        }
        assert len(ids) == 2


class TestFaults:
    def test_an_injected_500_changes_nothing_and_a_retry_goes_through(
        self, fake: FakeStripe, sdk: stripe.StripeClient
    ) -> None:
        acct = onboard(sdk)
        fake.inject("/v1/transfers", status=500)
        params = {"amount": 900, "currency": "eur", "destination": acct}
        with pytest.raises(stripe.APIError) as err:
            sdk.v1.transfers.create(params=params, options={"idempotency_key": "k-500"})
        assert err.value.http_status == 500
        assert fake.objects("transfer") == [] and fake.balance() == PLATFORM_CENTS
        assert sdk.v1.transfers.create(params=params, options={"idempotency_key": "k-500"}).amount == 900

    def test_a_recorded_500_is_replayed_like_stripe_does(
        self, fake: FakeStripe, sdk: stripe.StripeClient
    ) -> None:
        fake.inject("POST /v1/customers", status=503, record=True)
        for _ in range(2):
            with pytest.raises(stripe.APIError):
                sdk.v1.customers.create(params={"name": "A"}, options={"idempotency_key": "k-cus"})
        assert fake.objects("customer") == []

    def test_a_timed_out_payout_retried_with_its_key_is_paid_once(self, fake: FakeStripe) -> None:
        sdk = _client(fake, timeout=0.2)
        acct = onboard(sdk)
        sdk.v1.transfers.create(params={"amount": 2_000, "currency": "eur", "destination": acct})
        fake.inject("/v1/payouts", method="POST", timeout=0.6, perform=True)
        params = {"amount": 2_000, "currency": "eur"}
        options: Any = {"idempotency_key": "escompte:payout:adv_4", "stripe_account": acct}
        with pytest.raises(stripe.APIConnectionError):
            sdk.v1.payouts.create(params=params, options=options)
        with pytest.raises(stripe.APIError) as err:  # still running on the Stripe side
            sdk.v1.payouts.create(params=params, options=options)
        assert err.value.http_status == 409
        assert err.value.json_body is not None and err.value.json_body["error"]["type"] == "idempotency_error"
        deadline = time.monotonic() + 3
        while fake.performed[("POST", "/v1/payouts")] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        po = sdk.v1.payouts.create(params=params, options=options)
        assert [p["id"] for p in fake.objects("payout", acct)] == [po.id]
        assert fake.performed[("POST", "/v1/payouts")] == 1 and fake.balance(acct) == 0

    def test_a_lost_response_keeps_the_operation_under_its_key(
        self, fake: FakeStripe, sdk: stripe.StripeClient
    ) -> None:
        acct = onboard(sdk)
        fake.inject("/v1/transfers", status=502, perform=True)
        params = {"amount": 300, "currency": "eur", "destination": acct}
        with pytest.raises(stripe.APIError):
            sdk.v1.transfers.create(params=params, options={"idempotency_key": "k-lost"})
        assert len(fake.objects("transfer")) == 1
        tr = sdk.v1.transfers.create(params=params, options={"idempotency_key": "k-lost"})
        assert tr.id == fake.objects("transfer")[0]["id"]


class TestSettlement:
    def _paid_out(self, fake: FakeStripe, sdk: stripe.StripeClient, amount: int = 3_000) -> tuple[str, str]:
        acct = onboard(sdk)
        sdk.v1.transfers.create(params={"amount": amount, "currency": "eur", "destination": acct})
        po = sdk.v1.payouts.create(
            params={"amount": amount, "currency": "eur"}, options={"stripe_account": acct}
        )
        return acct, po.id

    def test_settled_payouts_are_paid(self, fake: FakeStripe, sdk: stripe.StripeClient) -> None:
        acct, po_id = self._paid_out(fake, sdk)
        po = sdk.v1.payouts.retrieve(po_id, options={"stripe_account": acct})
        assert fake.settle_payouts(at=po.arrival_date - 1) == []
        assert [p["id"] for p in fake.settle_payouts(at=po.arrival_date)] == [po_id]
        assert sdk.v1.payouts.retrieve(po_id, options={"stripe_account": acct}).status == "paid"
        event = fake.events[-1]
        assert event["type"] == "payout.paid" and event["account"] == acct
        assert event["data"]["previous_attributes"] == {"status": "pending"}
        listed = sdk.v1.events.list(params={"type": "payout.paid"}, options={"stripe_account": acct})
        assert [e.id for e in listed.data] == [event["id"]]
        assert sdk.v1.events.list(params={"type": "payout.paid"}).data == []  # not a platform event

    def test_a_failed_payout_returns_the_money_and_disables_the_bank_account(
        self, fake: FakeStripe, sdk: stripe.StripeClient
    ) -> None:
        fake.fail_next_payout("account_closed")
        acct, po_id = self._paid_out(fake, sdk)
        assert sdk.v1.payouts.retrieve(po_id, options={"stripe_account": acct}).status == "pending"
        fake.settle_payouts()
        po = sdk.v1.payouts.retrieve(po_id, options={"stripe_account": acct})
        assert po.status == "failed" and po.failure_code == "account_closed" and po.failure_message
        assert str(po.failure_balance_transaction).startswith("txn_")
        assert fake.balance(acct) == 3_000
        failed = next(e for e in fake.events if e["type"] == "payout.failed")
        assert failed["data"]["object"]["failure_code"] == "account_closed"
        account = sdk.v1.accounts.retrieve(acct)
        assert account.payouts_enabled is False
        assert account.requirements is not None and account.requirements.currently_due == ["external_account"]
        with pytest.raises(stripe.InvalidRequestError) as err:
            sdk.v1.payouts.create(params={"amount": 1, "currency": "eur"}, options={"stripe_account": acct})
        assert err.value.code == "payouts_not_allowed"

    def test_a_payout_can_fail_after_being_paid(self, fake: FakeStripe, sdk: stripe.StripeClient) -> None:
        fake.fail_next_payout("could_not_process", after_paid=True)
        acct, po_id = self._paid_out(fake, sdk)
        fake.settle_payouts()
        assert sdk.v1.payouts.retrieve(po_id, options={"stripe_account": acct}).status == "paid"
        fake.settle_payouts()
        assert sdk.v1.payouts.retrieve(po_id, options={"stripe_account": acct}).status == "failed"
        assert [e["type"] for e in fake.events if e["type"].startswith("payout.")] == [
            "payout.created",
            "payout.paid",
            "payout.failed",
        ]
        assert sdk.v1.accounts.retrieve(acct).payouts_enabled is True

    def test_a_debit_is_processing_then_succeeds(self, fake: FakeStripe, sdk: stripe.StripeClient) -> None:
        seti = debtor(sdk)
        pi = debit(sdk, seti)
        assert pi.status == "processing"
        charge = sdk.v1.charges.retrieve(str(pi.latest_charge))
        assert charge.id.startswith("py_") and charge.status == "pending" and charge.payment_intent == pi.id
        assert types(fake)[-3:] == ["payment_intent.created", "payment_intent.processing", "charge.pending"]
        fake.settle_payment_intents()
        assert sdk.v1.payment_intents.retrieve(pi.id).status == "succeeded"
        charge = sdk.v1.charges.retrieve(charge.id)
        assert charge.status == "succeeded" and charge.paid is True
        assert fake.balance() == PLATFORM_CENTS + 50_000
        assert types(fake)[-2:] == ["charge.succeeded", "payment_intent.succeeded"]
        bt = sdk.v1.balance_transactions.list(params={"source": charge.id}).data[0]
        assert (bt.type, bt.amount, bt.net) == ("payment", 50_000, 50_000)

    def test_a_scheduled_debit_failure(self, fake: FakeStripe, sdk: stripe.StripeClient) -> None:
        seti = debtor(sdk)
        fake.fail_next_payment_intent("insufficient_funds")
        pi = debit(sdk, seti)
        fake.settle_payment_intents()
        pi = sdk.v1.payment_intents.retrieve(pi.id)
        assert pi.status == "requires_payment_method"
        assert pi.last_payment_error is not None and pi.last_payment_error.code == "insufficient_funds"
        charge = sdk.v1.charges.retrieve(str(pi.latest_charge))
        assert charge.status == "failed" and charge.failure_code == "insufficient_funds"
        assert types(fake)[-2:] == ["charge.failed", "payment_intent.payment_failed"]
        assert fake.balance() == PLATFORM_CENTS

    def test_debits_above_the_sepa_cap_are_refused(self, fake: FakeStripe, sdk: stripe.StripeClient) -> None:
        seti = debtor(sdk)
        with pytest.raises(stripe.InvalidRequestError) as err:
            debit(sdk, seti, amount=1_000_001)
        assert err.value.code == "amount_too_large"

    def test_a_refund(self, fake: FakeStripe, sdk: stripe.StripeClient) -> None:
        pi = debit(sdk, debtor(sdk))
        with pytest.raises(stripe.InvalidRequestError) as err:
            sdk.v1.refunds.create(params={"payment_intent": pi.id})
        assert err.value.code == "charge_not_refundable"
        fake.settle_payment_intents()
        refund = sdk.v1.refunds.create(params={"payment_intent": pi.id, "amount": 20_000})
        assert refund.id.startswith("re_") and refund.status == "succeeded"
        charge = sdk.v1.charges.retrieve(str(pi.latest_charge))
        assert charge.amount_refunded == 20_000 and charge.refunded is False
        assert fake.events[-1]["type"] == "charge.refunded"
        assert fake.balance() == PLATFORM_CENTS + 30_000

    def test_a_dispute_withdraws_the_funds(self, fake: FakeStripe, sdk: stripe.StripeClient) -> None:
        pi = debit(sdk, debtor(sdk))
        fake.settle_payment_intents()
        dispute = fake.dispute_charge(str(pi.latest_charge))
        assert sdk.v1.charges.retrieve(str(pi.latest_charge)).disputed is True
        assert fake.balance() == PLATFORM_CENTS
        assert "charge.dispute.created" in types(fake) and "charge.dispute.funds_withdrawn" in types(fake)
        adjustment = sdk.v1.balance_transactions.list(params={"type": "adjustment"}).data[0]
        assert adjustment.amount == -50_000 and adjustment.source == dispute["id"]
        fake.close_dispute(dispute["id"])
        assert fake.events[-1]["type"] == "charge.dispute.closed"
        assert fake.events[-1]["data"]["object"]["status"] == "lost"


class TestEvents:
    def test_list_paginates_newest_first_and_retrieves(
        self, fake: FakeStripe, sdk: stripe.StripeClient
    ) -> None:
        for i in range(5):
            sdk.v1.customers.create(params={"name": f"c{i}"})
        page = sdk.v1.events.list(params={"limit": 2})
        assert page.has_more is True and len(page.data) == 2
        names = [e.data.object["name"] for e in page.auto_paging_iter()]
        assert names == ["c4", "c3", "c2", "c1", "c0"]
        second = sdk.v1.events.list(params={"limit": 2, "starting_after": page.data[-1].id})
        assert [e.data.object["name"] for e in second.data] == ["c2", "c1"]
        event = sdk.v1.events.retrieve(page.data[0].id)
        assert event.type == "customer.created" and event.request is not None
        assert event.api_version and event.livemode is False

    def test_undelivered_events_can_be_listed(self, fake: FakeStripe, sdk: stripe.StripeClient) -> None:
        sdk.v1.customers.create(params={"name": "a"})
        assert len(sdk.v1.events.list(params={"delivery_success": False}).data) == 1
        assert sdk.v1.events.list(params={"delivery_success": True}).data == []


class TestWebhooks:
    def test_delivery_is_signed_and_verifiable_with_the_sdk(
        self, fake: FakeStripe, sdk: stripe.StripeClient, receiver: Receiver
    ) -> None:
        fake.set_webhook(receiver.url, SECRET)
        acct = onboard(sdk)
        sdk.v1.transfers.create(params={"amount": 100, "currency": "eur", "destination": acct})
        assert fake.deliver(types=["account.*"]) == [(fake.events[0]["id"], 200)]
        assert [e["type"] for e in fake.pending_events()] == ["transfer.created"]
        results = fake.deliver()
        assert [status for _, status in results] == [200]
        assert fake.pending_events() == []
        events = receiver.events()
        assert [e.type for e in events] == ["account.updated", "transfer.created"]
        assert events[0].account == acct and events[1].data.object["destination"] == acct
        assert receiver.events(secret=SECRET)[1].id == fake.events[1]["id"]

    def test_twice_and_reverse(self, fake: FakeStripe, sdk: stripe.StripeClient, receiver: Receiver) -> None:
        fake.set_webhook(receiver.url, SECRET)
        for name in ("a", "b"):
            sdk.v1.customers.create(params={"name": name})
        first, second = (e["id"] for e in fake.events)
        results = fake.deliver(twice=True, reverse=True)
        assert [ev for ev, _ in results] == [second, first, second, first]
        assert [e.id for e in receiver.events()] == [second, first, second, first]
        assert fake.deliver() == []
        assert fake.deliver(event_id=first) == [(first, 200)]  # redelivered on demand

    def test_a_bad_secret_or_a_stale_timestamp_fails_verification(
        self, fake: FakeStripe, sdk: stripe.StripeClient, receiver: Receiver
    ) -> None:
        fake.set_webhook(receiver.url, "whsec_other")
        sdk.v1.customers.create(params={"name": "a"})
        fake.deliver()
        with pytest.raises(stripe.SignatureVerificationError):
            receiver.events(secret=SECRET)
        payload = json.dumps(fake.events[0]).encode()
        stale = sign(payload, SECRET, timestamp=int(time.time()) - 600)
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.Webhook.construct_event(payload, stale, SECRET)
        assert stripe.Webhook.construct_event(payload, FakeStripe.sign(payload, SECRET), SECRET).id

    def test_failed_deliveries_stay_pending(
        self, fake: FakeStripe, sdk: stripe.StripeClient, receiver: Receiver
    ) -> None:
        sdk.v1.customers.create(params={"name": "a"})
        fake.set_webhook("http://127.0.0.1:9/nowhere", SECRET)  # discard port: connection refused
        assert [status for _, status in fake.deliver()] == [0]
        fake.set_webhook(receiver.url, SECRET)
        receiver.status = 500
        assert [status for _, status in fake.deliver()] == [500]
        assert len(fake.pending_events()) == 1
        receiver.status = 204
        assert [status for _, status in fake.deliver()] == [204]
        assert fake.pending_events() == []

    def test_auto_delivery(self, fake: FakeStripe, sdk: stripe.StripeClient, receiver: Receiver) -> None:
        fake.set_webhook(receiver.url, SECRET)
        fake.auto_deliver = True
        sdk.v1.customers.create(params={"name": "a"})
        deadline = time.monotonic() + 3
        while not receiver.received and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [e.type for e in receiver.events()] == ["customer.created"]


class TestHttpControls:
    def test_another_process_can_drive_the_fake(
        self, fake: FakeStripe, sdk: stripe.StripeClient, receiver: Receiver
    ) -> None:
        acct = onboard(sdk)
        sdk.v1.transfers.create(params={"amount": 100, "currency": "eur", "destination": acct})
        po = sdk.v1.payouts.create(
            params={"amount": 100, "currency": "eur"}, options={"stripe_account": acct}
        )
        with httpx.Client(base_url=fake.base_url) as http:
            r = http.post("/_fake/settle_payouts", json={})
            assert r.status_code == 200 and r.json()["result"][0]["id"] == po.id
            assert (
                http.post("/_fake/set_webhook", json={"url": receiver.url, "secret": SECRET}).status_code
                == 200
            )
            delivered = http.post("/_fake/deliver", json={"types": ["payout.*"]}).json()["result"]
            assert [status for _, status in delivered] == [200, 200]
            state = http.get("/_fake/state").json()["result"]
            assert state["performed"]["POST /v1/payouts"] == 1
            assert http.post("/_fake/settle_payouts", json={"nope": 1}).status_code == 400
        assert [e.type for e in receiver.events()] == ["payout.created", "payout.paid"]


class TestSaveAndLoad:
    """The demo keeps its fake Stripe across restarts (``escompte demo``)."""

    def test_a_restarted_fake_knows_its_objects_and_replays_its_keys(
        self, fake: FakeStripe, sdk: stripe.StripeClient, tmp_path: Path
    ) -> None:
        acct = onboard(sdk)
        sdk.v1.transfers.create(params={"amount": 30_000, "currency": "eur", "destination": acct})
        payout = sdk.v1.payouts.create(
            params={"amount": 30_000, "currency": "eur"},
            options={"stripe_account": acct, "idempotency_key": "escompte:payout:adv_9"},
        )
        state = tmp_path / "stripe.pickle"
        fake.save(state)
        with FakeStripe(platform_balance_cents=PLATFORM_CENTS, webhook_secret=SECRET) as again:
            assert again.load(state) is True
            client = _client(again)
            assert client.v1.accounts.retrieve(acct).payouts_enabled is True
            # the same key replays the first payout: nothing is paid twice
            replay = client.v1.payouts.create(
                params={"amount": 30_000, "currency": "eur"},
                options={"stripe_account": acct, "idempotency_key": "escompte:payout:adv_9"},
            )
            assert replay.id == payout.id
            assert again.performed[("POST", "/v1/payouts")] == 1
            # the payout it had taken is settled and read back paid
            assert [p["id"] for p in again.settle_payouts()] == [payout.id]
            assert client.v1.payouts.retrieve(payout.id, options={"stripe_account": acct}).status == "paid"
            assert again.balance() == PLATFORM_CENTS - 30_000 and again.balance(acct) == 0

    def test_no_file_or_an_unreadable_one_changes_nothing(self, fake: FakeStripe, tmp_path: Path) -> None:
        before = fake.balance()
        assert fake.load(tmp_path / "missing.pickle") is False
        broken = tmp_path / "broken.pickle"
        broken.write_bytes(b"not a pickle")
        assert fake.load(broken) is False
        assert fake.balance() == before and fake.events == []
