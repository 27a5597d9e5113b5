"""Bank routes: aggregator pushes, transactions and accounts, under tenancy."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from escompte.connectors.samples.bank import SampleEntry, camt053_xml, sample_iban
from escompte.ids import is_id, new_id
from escompte.models import BankAccount, BankBalance, BankTransaction
from tests import factories as f
from tests.api.conftest import World

IBAN = "FR7630006000011234567890189"
CLIENT_IBAN = "FR7630004000031234567890143"


def _tx(n: int, amount: int = 1_000_00, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"agg-{n}",
        "booking_date": "2026-03-02",
        "value_date": "2026-03-03",
        "amount": {"amount": amount, "currency": "EUR"},
        "counterparty": {"name": f"CLIENT {n}", "iban": CLIENT_IBAN},
        "remittance_information": f"FACTURE F-{n}",
        "structured_reference": "RF18539007547034",
        "end_to_end_id": f"E2E-{n}",
        **extra,
    }


def _batch(transactions: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "account": {"iban": "FR76 3000 6000 0112 3456 7890 189", "name": "Compte courant"},
        "transactions": transactions,
        "balances": [
            {"date": "2026-03-02", "amount": {"amount": 5_000_00, "currency": "EUR"}, "kind": "CLBD"}
        ],
        **extra,
    }


def _push(client: TestClient, world: World, body: dict[str, Any], **headers: str) -> Any:
    return client.post(
        f"/v1/companies/{world.a.company.id}/bank-transactions",
        json=body,
        headers={**world.a.headers, **headers},
    )


def _count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(BankTransaction)) or 0)


class TestPush:
    def test_created_then_unchanged(self, client: TestClient, session: Session, world: World) -> None:
        body = _batch([_tx(1), _tx(2, -250_00, counterparty={"name": "EDF"}), _tx(3)])
        first = _push(client, world, body)
        assert first.status_code == 201, first.text
        out = first.json()
        assert out["object"] == "bank_transaction_batch"
        assert (out["created"], out["unchanged"]) == (3, 0)
        assert out["balances"] == {"created": 1, "updated": 0, "unchanged": 0}
        assert is_id(out["bank_account"], "bac") and len(out["transactions"]) == 3
        assert all(is_id(i, "btx") for i in out["transactions"])
        again = _push(client, world, body)
        assert again.status_code == 201
        assert (again.json()["created"], again.json()["unchanged"]) == (0, 3)
        assert again.json()["transactions"] == out["transactions"]
        assert again.json()["balances"] == {"created": 0, "updated": 0, "unchanged": 1}
        assert _count(session) == 3
        account = session.get(BankAccount, out["bank_account"])
        assert account is not None and (account.iban, account.name) == (IBAN, "Compte courant")

    def test_transaction_read_back(self, client: TestClient, world: World) -> None:
        ids = _push(client, world, _batch([_tx(1), _tx(2, -250_00, counterparty=None)])).json()[
            "transactions"
        ]
        r = client.get(f"/v1/bank-transactions/{ids[0]}", headers=world.a.headers)
        assert r.status_code == 200
        body = r.json()
        assert body["object"] == "bank_transaction" and body["id"] == ids[0]
        assert body["company"] == world.a.company.id and body["data_import"] is None
        assert body["amount"] == {"amount": 100000, "currency": "EUR"}
        assert body["matched"] == {"amount": 0, "currency": "EUR"}
        assert body["counterparty"] == {"name": "CLIENT 1", "iban": CLIENT_IBAN}
        assert (body["booking_date"], body["value_date"]) == ("2026-03-02", "2026-03-03")
        assert (body["external_id"], body["remittance_information"]) == ("agg-1", "FACTURE F-1")
        assert (body["structured_reference"], body["end_to_end_id"]) == ("RF18539007547034", "E2E-1")
        assert body["match_status"] == "unmatched" and "created_at" in body
        debit = client.get(f"/v1/bank-transactions/{ids[1]}", headers=world.a.headers).json()
        assert debit["amount"]["amount"] == -25000 and debit["match_status"] == "ignored"
        assert debit["counterparty"] == {"name": None, "iban": None}

    def test_without_ids_identical_lines_are_told_apart(
        self, client: TestClient, session: Session, world: World
    ) -> None:
        same = _tx(1)
        del same["id"]
        out = _push(client, world, _batch([same, same])).json()
        assert out["created"] == 2 and len(set(out["transactions"])) == 2
        assert _push(client, world, _batch([same, same])).json()["created"] == 0

    def test_replay_with_idempotency_key(self, client: TestClient, session: Session, world: World) -> None:
        body = _batch([_tx(1)])
        first = _push(client, world, body, **{"Idempotency-Key": "push-1"})
        again = _push(client, world, body, **{"Idempotency-Key": "push-1"})
        assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
        assert again.content == first.content
        other = _push(client, world, _batch([_tx(2)]), **{"Idempotency-Key": "push-1"})
        assert other.status_code == 422
        assert _count(session) == 1

    def test_new_credits_are_reconciled(self, client: TestClient, session: Session, world: World) -> None:
        invoice = world.a.invoice
        credit = _tx(9, invoice.amount_cents, remittance_information=f"VIR {invoice.number}")
        credit["counterparty"] = {"name": world.a.debtor.legal_name}
        ids = _push(client, world, _batch([credit])).json()["transactions"]
        status = client.get(f"/v1/bank-transactions/{ids[0]}", headers=world.a.headers).json()["match_status"]
        assert status == "matched"

    def test_movements_of_an_imported_statement_are_not_stored_twice(
        self, client: TestClient, session: Session, world: World
    ) -> None:
        """The aggregator pushes what the camt.053 statement already brought: the push
        answers with the known transactions' ids and stores only the new one."""
        statement = camt053_xml(
            IBAN,
            [
                SampleEntry(
                    booking_date=date(2026, 3, 2),
                    amount_cents=1_000_00,
                    account_servicer_ref="BQ1",
                    counterparty_name="CLIENT 1",
                    remittance="FACTURE F-1",
                )
            ],
            (),
            "001.08",
        )
        imported = client.post(
            f"/v1/companies/{world.a.company.id}/imports",
            files={"file": ("releve.xml", statement, "application/xml")},
            headers=world.a.headers,
        )
        assert imported.status_code in (201, 202), imported.text
        known = client.get(
            f"/v1/companies/{world.a.company.id}/bank-transactions", headers=world.a.headers
        ).json()["data"]
        assert [(t["source"], t["amount"]["amount"]) for t in known] == [("camt", 1_000_00)]
        out = _push(client, world, _batch([_tx(1), _tx(2, 2_000_00)])).json()
        assert (out["created"], out["known_from_other_sources"], out["unchanged"]) == (1, 1, 0)
        assert out["transactions"][0] == known[0]["id"]
        again = _push(client, world, _batch([_tx(1), _tx(2, 2_000_00)])).json()
        assert (again["created"], again["known_from_other_sources"], again["unchanged"]) == (0, 0, 2)
        assert again["transactions"] == out["transactions"]
        assert _count(session) == 2

    def test_statement_completes_a_pushed_credit_which_then_reconciles(
        self, client: TestClient, session: Session, world: World
    ) -> None:
        """The aggregator's label says nothing of the invoice; the statement read later
        names it: the pushed credit takes the statement's text and is matched."""
        invoice = world.a.invoice
        pushed = _push(
            client,
            world,
            _batch(
                [
                    _tx(
                        7,
                        invoice.amount_cents,
                        counterparty=None,
                        remittance_information="VIR SEPA RECU",
                        structured_reference=None,
                        end_to_end_id=None,
                    )
                ]
            ),
        ).json()
        path = f"/v1/bank-transactions/{pushed['transactions'][0]}"
        assert client.get(path, headers=world.a.headers).json()["match_status"] == "unmatched"
        statement = camt053_xml(
            IBAN,
            [
                SampleEntry(
                    booking_date=date(2026, 3, 2),
                    amount_cents=invoice.amount_cents,
                    account_servicer_ref="BQ7",
                    counterparty_name=world.a.debtor.legal_name,
                    remittance=f"REGLEMENT FACTURE {invoice.number}",
                )
            ],
            (),
            "001.08",
        )
        imported = client.post(
            f"/v1/companies/{world.a.company.id}/imports",
            files={"file": ("releve.xml", statement, "application/xml")},
            headers=world.a.headers,
        )
        counts = imported.json()["counts"]
        assert (counts["created"], counts["unchanged"]) == (0, 1)
        assert counts["by_type"]["bank_transactions_known_from_other_sources"] == 1
        line = client.get(path, headers=world.a.headers).json()
        assert line["remittance_information"] == f"VIR SEPA RECU | REGLEMENT FACTURE {invoice.number}"
        assert line["match_status"] == "matched"
        paid = client.get(f"/v1/invoices/{invoice.id}", headers=world.a.headers).json()
        assert paid["status"] == "paid"
        assert _count(session) == 1


class TestValidation:
    @pytest.mark.parametrize(
        ("mutate", "field"),
        [
            (lambda b: b["transactions"][3]["amount"].update(amount=0), "transactions.3.amount.amount"),
            (
                lambda b: b["transactions"][1]["amount"].update(currency="eur"),
                "transactions.1.amount.currency",
            ),
            (lambda b: b["transactions"][2].update(booking_date="02/03/2026"), "transactions.2.booking_date"),
            (
                lambda b: b["transactions"][0]["counterparty"].update(iban="FR7630004000031234567890140"),
                "transactions.0.counterparty.iban",
            ),
            (lambda b: b["account"].update(iban="FR7630006000011234567890180"), "account.iban"),
            (lambda b: b["transactions"][0].update(colour="blue"), "transactions.0.colour"),
            (lambda b: b["balances"][0].update(kind="XXXX"), "balances.0.kind"),
            (
                lambda b: b["transactions"][2]["amount"].update(currency="USD"),
                "transactions.2.amount.currency",
            ),
            (lambda b: b["transactions"][3].update(id="agg-1"), "transactions.3.id"),
        ],
    )
    def test_422_names_the_field_and_stores_nothing(
        self, client: TestClient, session: Session, world: World, mutate: Any, field: str
    ) -> None:
        body = _batch([_tx(n) for n in range(1, 5)])
        mutate(body)
        r = _push(client, world, body)
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert field in [e["field"] for e in r.json()["errors"]]
        assert _count(session) == 0
        assert session.scalar(select(func.count()).select_from(BankAccount)) == 0
        assert session.scalar(select(func.count()).select_from(BankBalance)) == 0

    def test_batch_size_is_capped(self, client: TestClient, world: World) -> None:
        r = _push(client, world, _batch([_tx(n) for n in range(1001)]))
        assert r.status_code == 422
        assert r.json()["errors"][0]["field"] == "transactions"

    def test_account_currency_other_than_the_lines(self, client: TestClient, world: World) -> None:
        body = _batch([_tx(1)])
        body["account"]["currency"] = "USD"
        r = _push(client, world, body)
        assert r.status_code == 422
        assert [e["field"] for e in r.json()["errors"]] == [
            "transactions.0.amount.currency",
            "balances.0.amount.currency",
        ]


class TestTenancy:
    def test_another_tenants_company_is_404(self, client: TestClient, world: World) -> None:
        for key in (world.b.key, world.c.key, world.partner2_key):
            r = client.post(
                f"/v1/companies/{world.a.company.id}/bank-transactions",
                json=_batch([_tx(1)]),
                headers=f.auth(key),
            )
            assert r.status_code == 404, key
            for path in ("bank-transactions", "bank-accounts"):
                got = client.get(f"/v1/companies/{world.a.company.id}/{path}", headers=f.auth(key))
                assert got.status_code == 404

    def test_another_tenants_transaction_is_404(self, client: TestClient, world: World) -> None:
        tx_id = _push(client, world, _batch([_tx(1)])).json()["transactions"][0]
        assert client.get(f"/v1/bank-transactions/{tx_id}", headers=world.b.headers).status_code == 404
        assert (
            client.get(f"/v1/bank-transactions/{tx_id}", headers=f.auth(world.partner2_key)).status_code
            == 404
        )
        assert (
            client.get(f"/v1/bank-transactions/{tx_id}", headers=f.auth(world.partner1_key)).status_code
            == 200
        )
        assert (
            client.get(f"/v1/bank-transactions/{tx_id}", headers=f.auth(world.admin_key)).status_code == 200
        )
        missing = client.get(f"/v1/bank-transactions/{new_id('btx')}", headers=world.a.headers)
        assert missing.status_code == 404
        assert client.get("/v1/bank-transactions/inv_nope", headers=world.a.headers).status_code == 422

    def test_partner_pushes_for_its_company(self, client: TestClient, world: World) -> None:
        r = client.post(
            f"/v1/companies/{world.b.company.id}/bank-transactions",
            json=_batch([_tx(1)]),
            headers=f.auth(world.partner1_key),
        )
        assert r.status_code == 201


class TestLists:
    def test_pagination_filters_and_accounts(self, client: TestClient, world: World) -> None:
        credits = [_tx(n) for n in range(25)]
        debits = [_tx(100 + n, -10_00) for n in range(5)]
        first = _push(client, world, _batch(credits + debits)).json()
        second_account = {"iban": sample_iban(77)}
        other = _push(
            client,
            world,
            {"account": second_account, "transactions": [_tx(200)], "balances": []},
        ).json()
        url = f"/v1/companies/{world.a.company.id}/bank-transactions"
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            params: dict[str, Any] = {"limit": 10, **({"starting_after": cursor} if cursor else {})}
            page = client.get(url, params=params, headers=world.a.headers).json()
            seen += [t["id"] for t in page["data"]]
            pages += 1
            if not page["has_more"]:
                break
            cursor = page["data"][-1]["id"]
        assert pages == 4 and seen == sorted([*first["transactions"], *other["transactions"]], reverse=True)
        ignored = client.get(url, params={"match_status": "ignored"}, headers=world.a.headers).json()["data"]
        assert sorted(t["id"] for t in ignored) == sorted(first["transactions"][25:])
        by_account = client.get(
            url, params={"bank_account": other["bank_account"]}, headers=world.a.headers
        ).json()["data"]
        assert [t["id"] for t in by_account] == other["transactions"]
        bad = client.get(url, params={"match_status": "paid"}, headers=world.a.headers)
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "match_status"
        assert client.get(url, params={"bank_acount": "x"}, headers=world.a.headers).status_code == 422

        accounts = client.get(
            f"/v1/companies/{world.a.company.id}/bank-accounts", headers=world.a.headers
        ).json()
        by_iban = {a["iban"]: a for a in accounts["data"]}
        assert set(by_iban) == {IBAN, sample_iban(77)}
        main = by_iban[IBAN]
        assert main["object"] == "bank_account" and main["id"] == first["bank_account"]
        assert main["latest_balance"] == {
            "date": "2026-03-02",
            "kind": "CLBD",
            "amount": {"amount": 500000, "currency": "EUR"},
        }
        assert by_iban[sample_iban(77)]["latest_balance"] is None

    def test_latest_balance_is_the_most_recent(self, client: TestClient, world: World) -> None:
        balances = [
            {"date": "2026-03-01", "amount": {"amount": 10, "currency": "EUR"}, "kind": "CLBD"},
            {"date": "2026-03-02", "amount": {"amount": 20, "currency": "EUR"}, "kind": "OPBD"},
            {"date": "2026-03-02", "amount": {"amount": -30, "currency": "EUR"}, "kind": "CLBD"},
        ]
        _push(client, world, {"account": {"iban": IBAN}, "transactions": [], "balances": balances})
        accounts = client.get(
            f"/v1/companies/{world.a.company.id}/bank-accounts", headers=world.a.headers
        ).json()
        assert accounts["data"][0]["latest_balance"]["amount"]["amount"] == -30
