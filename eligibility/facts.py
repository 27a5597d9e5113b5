"""What a decision reads, as one frozen value: the rules and the score are functions of
it (and of the policy), so they are tested without a database. A decision keeps the
figures each check read and the hash of all of it.

``invoice_fingerprint`` is what identifies one invoice across the platform, whichever
seller or partner presents it (debtor SIREN, normalised number, amount, issue date). The
financing side stores it when an advance goes live (``financed_fingerprints``);
eligibility looks it up to refuse financing the same invoice twice. Only the hash is
compared, so no other tenant's data is read or revealed.
"""

from __future__ import annotations

import hashlib
import re
from datetime import date, datetime

from escompte.values import value

_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")


def normalised_number(number: str) -> str:
    """``"f-2026/001 "`` → ``"F2026001"``: separators and case differ between systems."""
    return _NOT_ALNUM.sub("", number).upper()


def invoice_fingerprint(debtor_siren: str, number: str, amount_cents: int, issue_date: date) -> str:
    """The platform-wide identity of an invoice (sha256, hex). Keep in step with
    ``repository.SQL_INVOICE_FINGERPRINT``, which computes the same in SQL."""
    payload = f"{debtor_siren}|{normalised_number(number)}|{amount_cents}|{issue_date.isoformat()}"
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@value
class BankFigures:
    """Bank health of a seller over the last ``window_days`` (from its connected accounts)."""

    connected: bool
    window_days: int
    accounts: int = 0
    transactions: int = 0  # in the window
    last_booking_date: date | None = None
    inflow_cents: int = 0
    outflow_cents: int = 0  # positive
    weeks_with_inflow: int = 0
    weeks_in_window: int = 0
    incidents: int = 0  # rejected debits, unpaid direct debits, returned payments, bank charges for incidents
    days_overdrawn: int | None = None  # None: no balances to count them
    balance_start_cents: int | None = None
    balance_end_cents: int | None = None


@value
class Facts:
    as_of_date: date
    policy_version: int
    # the invoice
    invoice_id: str
    company_id: str
    debtor_id: str
    kind: str
    document_type: str
    status: str
    number: str
    issue_date: date
    due_date: date
    due_date_estimated: bool
    amount_cents: int
    amount_paid_cents: int
    currency: str
    invoice_fingerprint: str | None  # None without a debtor SIREN
    # e-invoicing lifecycle: the latest status and the amount it carries (206 approved
    # part, 207 disputed part), and whether the buyer approved it (205/214) at some point
    lifecycle_code: int | None
    lifecycle_amount_cents: int | None
    buyer_approved: bool
    # the seller
    seller_siren: str
    seller_in_registry: bool
    seller_active: bool | None
    seller_ceased_on: date | None
    seller_proceeding: str | None  # latest BODACC kind, if any
    seller_proceeding_date: date | None
    # the debtor
    debtor_siren: str | None
    debtor_name: str
    debtor_in_registry: bool
    debtor_active: bool | None
    debtor_legal_form: str | None
    debtor_proceeding: str | None
    debtor_proceeding_date: date | None
    related_party: str | None  # the declared relation, if any
    # the debtor's payment behaviour (None: no reconciled history yet)
    behaviour_paid_count: int | None
    behaviour_avg_days_late: int | None  # whole days, rounded half-up
    behaviour_share_paid_late_bps: int | None
    behaviour_unpaid_overdue_count: int | None
    behaviour_unpaid_overdue_cents: int | None
    # the seller's books (FEC)
    books_connected: bool
    books_as_of: date | None  # the latest entry date in the books
    books_lines: int  # receivable lines (411…) of this invoice's piece
    books_debit_cents: int  # what the books say the debtor owes for this invoice
    # bank health
    bank: BankFigures
    # financed invoices (live advances), platform-wide
    financed_here: int  # this invoice's fingerprint, financed by this seller
    financed_elsewhere: int  # … by any other seller account
    debtor_outstanding_cents: int  # on this debtor's SIREN, all sellers
    seller_outstanding_cents: int  # this seller, all debtors
    seller_debtor_outstanding_cents: int  # this seller on this debtor
    # what the data was as of: the newest timestamp among the inputs
    data_as_of: datetime

    @property
    def amount_due_cents(self) -> int:
        return max(0, self.amount_cents - self.amount_paid_cents)
