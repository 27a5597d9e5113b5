"""Issue acceptance, through the API as a partner would: bad files of every kind are a
clear 4xx problem naming what and where, and change nothing; a bank credit naming an
invoice pays it and moves the debtor's history."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from escompte.connectors.samples.bank import SampleEntry, camt053_xml
from escompte.connectors.samples.einvoice import SampleInvoice, SampleParty, cii_xml
from escompte.connectors.samples.fec import FecEntry, FecLine, write_fec
from escompte.models import BankTransaction, BookLine, DataImport, Debtor, Invoice
from tests.api.conftest import World

TABLES = (DataImport, Invoice, Debtor, BookLine, BankTransaction)


def _counts(session: Session) -> tuple[int, ...]:
    return tuple(session.execute(select(func.count()).select_from(t)).scalar_one() for t in TABLES)


def _sale(number: str, day: date, cents: int, *, credit_cents: int | None = None) -> FecEntry:
    return FecEntry(
        "VT",
        f"VT{number}",
        day,
        number,
        (
            FecLine(
                "411000", "Clients", debit_cents=cents, aux_account_num="C00001", aux_account_lib="Client SA"
            ),
            FecLine("706000", "Ventes", credit_cents=credit_cents if credit_cents is not None else cents),
        ),
    )


def _invoice(world: World, *, number: str = "FA-77", total: int = 1_200_000) -> SampleInvoice:
    seller = SampleParty(world.a.company.legal_name, world.a.company.siren)
    buyer = SampleParty("Acheteur SA", "732829320")
    return SampleInvoice(
        number=number,
        seller=seller,
        buyer=buyer,
        issue_date=date(2026, 2, 1),
        due_date=date(2026, 3, 31),
        net_cents=total * 100 // 120,
        vat_cents=total - total * 100 // 120,
    )


def _bad_files(world: World) -> Iterator[tuple[str, str, bytes]]:
    day = date(2026, 1, 15)
    good_fec = write_fec([_sale("F-1", day, 10_000), _sale("F-2", day, 20_000)])
    yield "unbalanced FEC entry", "a.txt", write_fec([_sale("F-1", day, 10_000, credit_cents=9_000)])
    yield "truncated FEC", "b.txt", good_fec[: len(good_fec) - 25]
    yield "FEC in UTF-16", "c.txt", good_fec.decode().encode("utf-16")
    cii = cii_xml(_invoice(world))
    yield (
        "CII without its total",
        "d.xml",
        re.sub(rb"<ram:GrandTotalAmount>[^<]*</ram:GrandTotalAmount>", b"", cii),
    )
    yield "truncated CII", "e.xml", cii[: len(cii) // 2]
    yield (
        "XML with an external entity",
        "f.xml",
        (
            b'<?xml version="1.0"?>'
            b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b'<rsm:CrossIndustryInvoice xmlns:rsm="'
            b'urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100">'
            b"&x;</rsm:CrossIndustryInvoice>"
        ),
    )
    camt = camt053_xml(
        world.a.company.iban or "FR1420041010050500013M02606",
        [SampleEntry(booking_date=day, amount_cents=5_000, account_servicer_ref="R1", remittance="x")],
    )
    yield "truncated camt.053", "g.xml", camt[: len(camt) - 40]


class TestBadFiles:
    def test_each_is_a_4xx_problem_naming_what_and_where(
        self, client: TestClient, session: Session, world: World
    ) -> None:
        before = _counts(session)
        for label, name, content in _bad_files(world):
            r = client.post(
                f"/v1/companies/{world.a.company.id}/imports",
                files={"file": (name, content, "application/octet-stream")},
                headers=world.a.headers,
            )
            assert 400 <= r.status_code < 500, (label, r.status_code, r.text)
            assert r.headers["content-type"] == "application/problem+json", label
            problem = r.json()
            assert problem["detail"] and problem["errors"], label
            first = problem["errors"][0]
            where = first.get("line") or first.get("path") or first["field"]
            assert where, (label, problem)
            assert _counts(session) == before, label

    def test_a_2_gb_upload_is_refused_before_it_is_read(self, client: TestClient, world: World) -> None:
        def body() -> Iterator[bytes]:
            yield b"--x\r\n"  # the rest never needs to be sent

        r = client.post(
            f"/v1/companies/{world.a.company.id}/imports",
            content=body(),
            headers={
                **world.a.headers,
                "content-type": "multipart/form-data; boundary=x",
                "content-length": str(2 * 1024**3),
            },
        )
        assert r.status_code == 413
        assert r.json()["errors"][0]["field"] == "body"


class TestPaymentFromTheBank:
    def test_credit_naming_the_invoice_pays_it_and_moves_the_debtor_history(
        self, client: TestClient, session: Session, world: World
    ) -> None:
        invoice = _invoice(world, number="FA-2026-0042", total=1_200_000)
        r = client.post(
            f"/v1/companies/{world.a.company.id}/imports",
            files={"file": ("FA-2026-0042.xml", cii_xml(invoice), "application/xml")},
            headers=world.a.headers,
        )
        assert r.status_code == 201, r.text
        inv = client.get(
            "/v1/invoices", params={"company": world.a.company.id, "status": "open"}, headers=world.a.headers
        ).json()["data"]
        target = next(i for i in inv if i["number"] == "FA-2026-0042")
        paid_on = (date(2026, 3, 31) + timedelta(days=9)).isoformat()
        push = {
            "account": {"iban": "FR1420041010050500013M02606", "name": "Compte courant"},
            "transactions": [
                {
                    "id": "agg-tx-1",
                    "booking_date": paid_on,
                    "value_date": paid_on,
                    "amount": {"amount": 1_200_000, "currency": "EUR"},
                    "counterparty": {"name": "ACHETEUR SA", "iban": "FR7630006000011234567890189"},
                    "remittance_information": "Paiement facture FA 2026 0042",
                }
            ],
        }
        pushed = client.post(
            f"/v1/companies/{world.a.company.id}/bank-transactions", json=push, headers=world.a.headers
        )
        assert pushed.status_code in (200, 201), pushed.text
        client.post(f"/v1/companies/{world.a.company.id}/reconciliation", headers=world.a.headers)
        after = client.get(f"/v1/invoices/{target['id']}", headers=world.a.headers).json()
        assert after["status"] == "paid"
        assert after["amount_due"]["amount"] == 0
        behaviour = client.get(f"/v1/debtors/{target['counterparty']}/behaviour", headers=world.a.headers)
        assert behaviour.status_code == 200, behaviour.text
        figures = behaviour.json()
        assert figures["paid_invoice_count"] == 1
        assert float(figures["avg_days_late"]) == pytest.approx(9.0)
