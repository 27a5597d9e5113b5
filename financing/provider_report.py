"""Does the ledger agree with the payment provider? Every movement of the platform's
balance at Stripe (a balance transaction: transfer, transfer reversal, collected debit,
chargeback…) must match one ledger transaction on ``cash_stripe`` with the same provider
object and amount, and the other way round. Top-ups fund the balance: they match
``funding`` transactions when posted, and are listed apart otherwise."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from escompte.financing.rails import StripeRail
from escompte.models import LedgerAccount, LedgerPosting, LedgerTransaction

FUNDING_TYPES = frozenset({"topup"})


@dataclass
class Report:
    provider_balance_cents: int
    ledger_cash_cents: int
    matched: int = 0
    missing_in_ledger: list[dict[str, Any]] = field(default_factory=list)
    missing_at_provider: list[dict[str, Any]] = field(default_factory=list)
    amount_mismatches: list[dict[str, Any]] = field(default_factory=list)
    unposted_funding_cents: int = 0

    @property
    def agrees(self) -> bool:
        return not (self.missing_in_ledger or self.missing_at_provider or self.amount_mismatches)

    def as_dict(self) -> dict[str, Any]:
        return {
            "object": "provider_reconciliation",
            "provider": "stripe",
            "agrees": self.agrees,
            "provider_balance": self.provider_balance_cents,
            "ledger_cash_at_provider": self.ledger_cash_cents,
            "unposted_funding": self.unposted_funding_cents,
            "matched": self.matched,
            "missing_in_ledger": self.missing_in_ledger[:100],
            "missing_at_provider": self.missing_at_provider[:100],
            "amount_mismatches": self.amount_mismatches[:100],
        }


def ledger_cash_movements(session: Session) -> dict[str, tuple[str, str, int]]:
    """external ref → (transaction id, kind, amount on cash_stripe)."""
    rows = session.execute(
        select(
            LedgerTransaction.external_ref,
            LedgerTransaction.id,
            LedgerTransaction.kind,
            func.sum(LedgerPosting.amount_cents),
        )
        .join(LedgerPosting, LedgerPosting.transaction_id == LedgerTransaction.id)
        .join(LedgerAccount, LedgerAccount.id == LedgerPosting.account_id)
        .where(LedgerAccount.code == "cash_stripe")
        .group_by(LedgerTransaction.id)
    ).all()
    return {str(ref or txn): (txn, kind, int(total)) for ref, txn, kind, total in rows}


def reconcile(session: Session, rail: StripeRail) -> Report:
    provider = rail.balance_transactions()
    ledger = ledger_cash_movements(session)
    report = Report(
        provider_balance_cents=rail.available_balance_cents(),
        ledger_cash_cents=sum(amount for _, _, amount in ledger.values()),
    )
    seen: set[str] = set()
    for bt in provider:
        if bt["currency"] != "EUR":
            continue
        source = str(bt.get("source") or bt["id"])
        posted = ledger.get(source)
        if posted is None:
            if bt["type"] in FUNDING_TYPES:
                report.unposted_funding_cents += bt["amount"]
            else:
                report.missing_in_ledger.append(
                    {"id": bt["id"], "type": bt["type"], "source": source, "amount": bt["amount"]}
                )
            continue
        seen.add(source)
        if posted[2] != bt["amount"]:
            report.amount_mismatches.append(
                {
                    "source": source,
                    "provider_amount": bt["amount"],
                    "ledger_amount": posted[2],
                    "transaction": posted[0],
                }
            )
        else:
            report.matched += 1
    for ref, (txn, kind, amount) in ledger.items():
        if ref not in seen:
            report.missing_at_provider.append(
                {"transaction": txn, "kind": kind, "external_ref": ref, "amount": amount}
            )
    return report
