"""Files that no one at Escompte wrote (see ``tests/third_party``), imported through the
API as a partner would: the Factur-X specification's sample invoices (PDF, CII of every
profile, UBL 2.1 with and without the French CTC extension), and a Dutch test bank's
camt.053 statements, checked against the statements the Odoo Community Association's
importer reads from them."""

from __future__ import annotations

import ast
import zipfile
from datetime import date
from pathlib import Path
from typing import Any

import facturx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from escompte.models import BankBalance, BankTransaction, Invoice
from tests.api.conftest import World
from tests.third_party import FACTUR_X, OCA_CAMT, fetch

CII_PROFILES = ("factur-x-en16931.xml", "factur-x-basic.xml", "factur-x-basicwl.xml", "factur-x-extended.xml")
# Every CII sample's buyer has the legal registration 987654321, a placeholder that fails
# the SIREN's Luhn check, as the French e-invoicing platforms apply it.
PLACEHOLDER_SIREN = b"987654321"
PLACEHOLDER_VAT = b"FR 05 987 654 321"
BUYER_SIREN = "732829320"


@pytest.fixture(scope="module")
def facturx_samples() -> Path:
    return fetch(FACTUR_X)


@pytest.fixture(scope="module")
def camt_samples() -> Path:
    return fetch(OCA_CAMT)


def _company(client: TestClient, world: World, name: str, siren: str) -> str:
    r = client.post(
        "/v1/companies",
        json={"legal_name": name, "siren": siren, "contact_email": "tresorerie@example.fr"},
        headers={"Authorization": f"Bearer {world.admin_key}"},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _import(client: TestClient, world: World, company_id: str, name: str, data: bytes) -> Any:
    return client.post(
        f"/v1/companies/{company_id}/imports",
        files={"file": (name, data, "application/octet-stream")},
        headers={"Authorization": f"Bearer {world.admin_key}"},
    )


def _real_buyer(data: bytes) -> bytes:
    """The sample with its buyer's placeholder SIREN (and VAT number) made a real one."""
    key = (12 + 3 * (int(BUYER_SIREN) % 97)) % 97
    return data.replace(PLACEHOLDER_VAT, f"FR{key:02d}{BUYER_SIREN}".encode()).replace(
        PLACEHOLDER_SIREN, BUYER_SIREN.encode()
    )


def _count(session: Session, model: type[Invoice] | type[BankTransaction]) -> int:
    return session.execute(select(func.count()).select_from(model)).scalar_one()


def _invoices(client: TestClient, world: World, company_id: str) -> list[dict[str, Any]]:
    r = client.get(
        "/v1/invoices", params={"company": company_id}, headers={"Authorization": f"Bearer {world.admin_key}"}
    )
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


class TestFacturXSpecificationSamples:
    def test_as_published_the_buyers_placeholder_siren_is_refused_naming_the_field(
        self, client: TestClient, session: Session, world: World, facturx_samples: Path
    ) -> None:
        company = _company(client, world, "LE FOURNISSEUR", "123456782")
        before = _count(session, Invoice)
        files = [("invoice_EN16931.pdf", (facturx_samples / "pdf" / "invoice_EN16931.pdf").read_bytes())]
        files += [(name, (facturx_samples / "xml" / name).read_bytes()) for name in CII_PROFILES]
        for name, data in files:
            r = _import(client, world, company, name, data)
            assert r.status_code == 422, (name, r.text)
            first = r.json()["errors"][0]
            assert first["field"] == "BT-47", name
            assert "987654321" in first["message"]
            assert first["path"].endswith("ram:BuyerTradeParty/ram:SpecifiedLegalOrganization/ram:ID")
        assert _count(session, Invoice) == before

    def test_every_profile_and_the_pdf_read_the_same_invoice(
        self, client: TestClient, world: World, facturx_samples: Path
    ) -> None:
        company = _company(client, world, "LE FOURNISSEUR", "123456782")
        first = _import(
            client,
            world,
            company,
            CII_PROFILES[0],
            _real_buyer((facturx_samples / "xml" / CII_PROFILES[0]).read_bytes()),
        )
        assert first.status_code == 201, first.text
        assert first.json()["counts"]["by_type"] == {"invoices": 1, "debtors": 1}
        (invoice,) = _invoices(client, world, company)
        # the values as the sample states them
        assert invoice["number"] == "F20260023"
        assert invoice["kind"] == "receivable"
        assert invoice["issue_date"] == "2026-01-31"
        assert invoice["due_date"] == "2026-03-02"
        assert invoice["amount"] == {"amount": 10490, "currency": "EUR"}
        assert invoice["amount_due"] == {"amount": 10490, "currency": "EUR"}
        assert invoice["status"] == "open"
        debtor = client.get(
            f"/v1/debtors/{invoice['counterparty']}", headers={"Authorization": f"Bearer {world.admin_key}"}
        ).json()
        assert (debtor["legal_name"], debtor["siren"]) == ("LE CLIENT", BUYER_SIREN)
        # the other profiles, and the published PDF with the same XML, are the same invoice
        pdf = (facturx_samples / "pdf" / "invoice_EN16931.pdf").read_bytes()
        _, pdf_xml = facturx.get_facturx_xml_from_pdf(pdf)
        again = [
            (name, _real_buyer((facturx_samples / "xml" / name).read_bytes())) for name in CII_PROFILES[1:]
        ]
        again.append(("invoice_EN16931.pdf", facturx.generate_from_binary(pdf, _real_buyer(pdf_xml))))
        for name, data in again:
            r = _import(client, world, company, name, data)
            assert r.status_code == 201, (name, r.text)
            assert r.json()["counts"]["unchanged"] == 1, (name, r.json()["counts"])
        assert _invoices(client, world, company) == [invoice]

    def test_ubl_samples_with_a_down_payment(
        self, client: TestClient, world: World, facturx_samples: Path
    ) -> None:
        company = _company(client, world, "Au bon moulin", "999999998")
        r = _import(
            client, world, company, "u.xml", (facturx_samples / "xml" / "ubl-21-en16931.xml").read_bytes()
        )
        assert r.status_code == 201, r.text
        (invoice,) = _invoices(client, world, company)
        assert (invoice["number"], invoice["issue_date"], invoice["due_date"]) == (
            "F124212",
            "2026-06-17",
            "2026-07-16",
        )
        assert invoice["amount"]["amount"] == 30803  # TaxInclusiveAmount
        assert invoice["amount_paid"]["amount"] == 10000  # PrepaidAmount
        assert invoice["amount_due"]["amount"] == 20803  # PayableAmount
        assert invoice["status"] == "partially_paid"
        ctc = (facturx_samples / "xml" / "ubl-21-extended-ctc-fr.xml").read_bytes()
        r = _import(client, world, company, "ctc.xml", ctc)  # the same invoice, French CTC extension
        assert r.status_code == 201, r.text
        assert r.json()["counts"]["unchanged"] == 1

    def test_documents_escompte_does_not_import_are_named(
        self, client: TestClient, session: Session, world: World, facturx_samples: Path, camt_samples: Path
    ) -> None:
        company = _company(client, world, "LE FOURNISSEUR", "123456782")
        before = _count(session, Invoice)
        expected = {
            "zugferd-basic.xml": "ZUGFeRD 1.0",
            "zugferd-comfort.xml": "ZUGFeRD 1.0",
            "zugferd-extended.xml": "ZUGFeRD 1.0",
            "order-x-basic.xml": "Order-X",
            "order-x-comfort.xml": "Order-X",
        }
        files = [
            (name, (facturx_samples / "xml" / name).read_bytes(), words) for name, words in expected.items()
        ]
        files.append(("test-camt054", (camt_samples / "test-camt054").read_bytes(), "camt.054"))
        for name, data, words in files:
            r = _import(client, world, company, name, data)
            assert r.status_code == 422, (name, r.text)
            assert words in r.json()["detail"], name
            assert r.json()["errors"][0]["code"] == "unsupported"
        assert _count(session, Invoice) == before


def _golden(path: Path) -> tuple[str | None, str | None, list[dict[str, Any]]]:
    """An Odoo golden file: (currency, account number, statements) as a Python literal."""
    value = ast.literal_eval(path.read_text())
    return value[0], value[1], value[2]


def _remittance(transaction: dict[str, Any]) -> str:
    """The unstructured remittance (RmtInf/Ustrd) Odoo noted, else the reference it kept."""
    for line in transaction["narration"].splitlines():
        if line.startswith("Unstructured Reference (RmtInf/Ustrd): "):
            return line.split(": ", 1)[1]
    return str(transaction["payment_ref"])


class TestBankSamples:
    def test_statement_reads_as_odoo_reads_it(
        self, client: TestClient, session: Session, world: World, camt_samples: Path
    ) -> None:
        currency, iban, statements = _golden(camt_samples / "golden-camt053.pydata")
        company = _company(client, world, "Example company", "732829320")
        data = (camt_samples / "test-camt053").read_bytes()
        before = _count(session, BankTransaction)
        r = _import(client, world, company, "test-camt053.xml", data)
        assert r.status_code == 201, r.text
        (statement,) = statements
        ours = client.get(
            f"/v1/companies/{company}/bank-transactions",
            headers={"Authorization": f"Bearer {world.admin_key}"},
        ).json()["data"]
        assert sorted(
            (
                t["amount"]["amount"],
                t["amount"]["currency"],
                t["booking_date"],
                t["counterparty"]["name"],
                t["counterparty"]["iban"],
                t["remittance_information"],
            )
            for t in ours
        ) == sorted(
            (
                round(g["amount"] * 100),
                currency,
                g["date"],
                g["partner_name"],
                g["account_number"],
                _remittance(g),
            )
            for g in statement["transactions"]
        )
        balances = {
            b.kind: (b.balance_date, b.amount_cents, b.currency) for b in session.scalars(select(BankBalance))
        }
        day = date.fromisoformat(statement["date"])
        assert balances["OPBD"] == (day, round(statement["balance_start"] * 100), currency)
        assert balances["CLBD"] == (day, round(statement["balance_end_real"] * 100), currency)
        assert iban == "NL77ABNA0574908765"
        # the same file again changes nothing
        again = _import(client, world, company, "test-camt053.xml", data)
        assert again.status_code in (200, 201), again.text
        assert _count(session, BankTransaction) == before + len(statement["transactions"])

    def test_other_statements_of_the_same_account(
        self, client: TestClient, session: Session, world: World, camt_samples: Path
    ) -> None:
        company = _company(client, world, "Example company", "732829320")
        before = _count(session, BankTransaction)
        with zipfile.ZipFile(camt_samples / "test-camt053.zip") as z:
            for name in z.namelist():
                r = _import(client, world, company, name, z.read(name))
                assert r.status_code == 201, (name, r.text)
                assert r.json()["counts"]["by_type"]["bank_transactions"] == 3
        assert _count(session, BankTransaction) == before + 6

    def test_a_statement_without_entries(
        self, client: TestClient, session: Session, world: World, camt_samples: Path
    ) -> None:
        _, _, statements = _golden(camt_samples / "golden-camt053-no-ntry.pydata")
        assert statements == []  # Odoo reads no statement line from it, nor does Escompte
        company = _company(client, world, "Example company", "732829320")
        before = _count(session, BankTransaction)
        r = _import(
            client, world, company, "no-ntry.xml", (camt_samples / "test-camt053-no-ntry").read_bytes()
        )
        assert r.status_code == 201, r.text
        assert r.json()["counts"]["by_type"]["bank_transactions"] == 0
        assert _count(session, BankTransaction) == before

    def test_a_swiss_statement_is_refused_naming_its_account(
        self, client: TestClient, session: Session, world: World, camt_samples: Path
    ) -> None:
        company = _company(client, world, "Example company", "732829320")
        before = _count(session, BankTransaction)
        r = _import(client, world, company, "chf.xml", (camt_samples / "test-camt053-txdtls").read_bytes())
        assert r.status_code == 422, r.text
        first = r.json()["errors"][0]
        assert first["path"] == "/Document/BkToCstmrStmt/Stmt[1]/Acct/Id/IBAN"
        assert first["line"] > 0
        assert _count(session, BankTransaction) == before
