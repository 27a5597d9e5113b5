"""Supplier (payables) financing: Escompte pays the SME's supplier by SEPA credit
transfer — a pain.001 file for the bank, confirmed by the platform account's camt.053 —
and the SME repays by SEPA debit like any advance."""

from __future__ import annotations

from datetime import timedelta

import pytest
from lxml import etree
from sqlalchemy import func, select

from escompte.connectors.samples.bank import SampleEntry, camt053_xml
from escompte.financing import ledger, sepa
from escompte.invoices import service as invoices
from escompte.invoices.schemas import InvoiceCreate
from escompte.models import LedgerTransaction, PaymentOperation
from escompte.schemas import MoneyIn
from tests.factories import ADMIN
from tests.financing.conftest import PLATFORM_IBAN, Env, Seller, advance, seller, set_up_payments
from tests.financing.test_advances import _deliver, _ledger_balanced

pytestmark = pytest.mark.committed

SUPPLIER_IBAN = "FR7610107001011234567890129"


def _payable(env: Env, who: Seller, amount: int = 480_000) -> str:
    with env.session() as s, s.begin():
        inv = invoices.create_invoice(
            s,
            env.clock,
            ADMIN,
            InvoiceCreate(
                company=who.company_id,
                counterparty=who.debtor_id,
                kind="payable",  # type: ignore[arg-type]
                number="FRN-2026-118",
                issue_date=env.clock.today(),
                due_date=env.clock.today() + timedelta(days=45),
                amount=MoneyIn(amount=amount, currency="EUR"),
            ),
        )
        return inv.id


def _admin(who: Seller) -> dict[str, str]:
    return {"Authorization": f"Bearer {who.admin_key}"}


def _statement(env: Env, op_id: str, amount: int, *, debit: bool = True) -> bytes:
    entry = SampleEntry(
        booking_date=env.clock.today(),
        amount_cents=-amount if debit else amount,
        bank_code="PMNT/ICDT/ESCT" if debit else "PMNT/ICDT/RRTN",
        counterparty_name="Fournisseur",
        end_to_end_id=sepa.end_to_end_id(op_id),
        remittance="FRN-2026-118",
    )
    return camt053_xml(PLATFORM_IBAN, [entry], version="001.08")


def _accepted(env: Env, who: Seller) -> dict[str, object]:
    invoice = _payable(env, who)
    set_up_payments(env, who)
    q = env.http.post("/v1/quotes", headers=who.headers, json={"invoice": invoice, "duration_days": 30})
    assert q.status_code == 201, q.text
    missing = env.http.post("/v1/advances", headers=who.headers, json={"quote": q.json()["id"]})
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "supplier_iban"
    r = env.http.post(
        "/v1/advances", headers=who.headers, json={"quote": q.json()["id"], "supplier_iban": SUPPLIER_IBAN}
    )
    assert r.status_code == 201, r.text
    adv = r.json()
    assert adv["kind"] == "payable" and adv["status"] == "disbursing"
    assert env.fake.performed[("POST", "/v1/transfers")] == 0  # not through Stripe
    return dict(adv)


def test_supplier_paid_by_credit_transfer_then_sme_repays(env: Env) -> None:
    who = seller(env)
    adv = _accepted(env, who)
    assert env.http.post("/v1/payment-files", headers=who.headers).status_code == 403
    r = env.http.post("/v1/payment-files", headers=_admin(who))
    assert r.status_code == 201, r.text
    file = r.json()
    assert file["transactions"] == 1 and file["total"]["amount"] == 480_000
    again = env.http.post("/v1/payment-files", headers=_admin(who))
    assert again.status_code == 409  # nothing left to pay: never twice in two files
    xml = env.http.get(file["download"], headers=_admin(who))
    assert xml.headers["content-type"].startswith("application/xml")
    doc = etree.fromstring(xml.content)
    ns = {"p": "urn:iso:std:iso:20022:tech:xsd:pain.001.001.03"}
    assert doc.findtext(".//p:CdtrAcct/p:Id/p:IBAN", namespaces=ns) == SUPPLIER_IBAN
    assert doc.findtext(".//p:DbtrAcct/p:Id/p:IBAN", namespaces=ns) == PLATFORM_IBAN
    e2e = doc.findtext(".//p:EndToEndId", namespaces=ns)
    with env.session() as s:
        op = s.execute(select(PaymentOperation).where(PaymentOperation.advance_id == adv["id"])).scalar_one()
    assert e2e == sepa.end_to_end_id(op.id)

    env.clock.advance(timedelta(days=1))
    statement = _statement(env, op.id, 480_000)
    r = env.http.post(
        "/v1/platform/bank-statements",
        headers={**_admin(who), "Content-Type": "application/xml"},
        content=statement,
    )
    assert r.status_code == 200, r.text
    assert r.json()["confirmed"] == [op.id]
    a = advance(env, who, str(adv["id"]))
    assert a["status"] == "active" and a["start_date"] == env.clock.today().isoformat()
    # the same statement again changes nothing
    r = env.http.post(
        "/v1/platform/bank-statements",
        headers={**_admin(who), "Content-Type": "application/xml"},
        content=statement,
    )
    assert r.json()["confirmed"] == []
    with env.session() as s:
        assert (
            s.execute(select(func.count()).where(LedgerTransaction.kind == "disbursement")).scalar_one() == 1
        )
        assert ledger.advance_balances(s, str(adv["id"]))["principal_receivable"] == 480_000

    env.clock.advance(timedelta(days=12))
    r = env.http.post(f"/v1/advances/{adv['id']}/repayments", headers=who.headers, json={})
    assert r.status_code == 201, r.text
    env.fake.settle_payment_intents()
    _deliver(env)
    assert advance(env, who, str(adv["id"]))["status"] == "repaid"
    _ledger_balanced(env)


def test_returned_credit_transfer_fails_the_advance(env: Env) -> None:
    who = seller(env)
    adv = _accepted(env, who)
    env.http.post("/v1/payment-files", headers=_admin(who))
    with env.session() as s:
        op = s.execute(select(PaymentOperation).where(PaymentOperation.advance_id == adv["id"])).scalar_one()
    r = env.http.post(
        "/v1/platform/bank-statements",
        headers={**_admin(who), "Content-Type": "application/xml"},
        content=_statement(env, op.id, 480_000, debit=False),
    )
    assert r.json()["returned"] == [op.id]
    assert advance(env, who, str(adv["id"]))["status"] == "disbursement_failed"
    _ledger_balanced(env)


def test_a_statement_that_is_not_camt053_is_refused(env: Env) -> None:
    who = seller(env)
    r = env.http.post(
        "/v1/platform/bank-statements",
        headers={**_admin(who), "Content-Type": "application/xml"},
        content=b"<Document xmlns='urn:iso:std:iso:20022:tech:xsd:pain.001.001.03'/>",
    )
    assert r.status_code == 422 and "camt.053" in r.json()["detail"]
