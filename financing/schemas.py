"""The API shapes of quotes, advances, repayments, payment profiles, the pricing grid and
the ledger. Rates are decimal strings (``"0.0006"`` = 0.06 % per day); money is cents."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, Field

from escompte.companies.schemas import Iban
from escompte.financing import pricing
from escompte.models import (
    Advance,
    AdvanceKind,
    AdvanceStatus,
    PaymentProfile,
    PricingGrid,
    Quote,
    Repayment,
    RepaymentSource,
    RepaymentStatus,
)
from escompte.schemas import InputModel, Money, MoneyIn, Resource, money, ref, text


def rate(value: Decimal) -> str:
    return format(value.normalize(), "f")


class QuoteIn(InputModel):
    invoice: ref("inv", "The invoice to finance.")  # type: ignore[valid-type]
    amount: MoneyIn | None = Field(
        default=None,
        description="How much to advance; default: the eligible maximum (up to 100 % incl. VAT).",
    )
    duration_days: int = Field(ge=3, le=120, description="Planned duration, 3-120 days.")


class QuoteOut(Resource):
    object: Literal["quote"] = "quote"
    company: str
    invoice: str
    decision: str = Field(description="The eligibility decision the quote rests on.")
    risk_grade: str
    grid_version: int
    amount: Money
    duration_days: int
    daily_rate: str = Field(description="Fraction per day, e.g. 0.0006 = 0.06 %.")
    daily_fee: str = Field(description="Fee for one day on the full amount, in cents (exact decimal).")
    fee_per_extra_day: Money = Field(description="One more day, rounded half-up to the cent.")
    minimum_fee: Money = Field(description="The fee is at least this many days: see min_days.")
    min_days: int
    fee_at_maturity: Money
    total_to_repay: Money
    annual_rate: str = Field(description="daily_rate x 365, as a fraction.")
    effective_annual_rate: str = Field(description="(1 + fee/amount)^(365/days) - 1, as a fraction.")
    late_daily_rate: str = Field(
        description="Late interest per day past maturity on the principal outstanding."
    )
    start_date: date
    maturity_date: date
    expires_at: datetime
    status: Literal["open", "accepted", "expired"]


def quote_out(q: Quote, now: datetime) -> QuoteOut:
    p = pricing.price_at(
        q.daily_rate, q.late_daily_rate, q.min_days, q.amount_cents, q.duration_days, q.start_date
    )
    status: Literal["open", "accepted", "expired"] = (
        "accepted" if q.accepted_at else ("expired" if q.expires_at <= now else "open")
    )
    return QuoteOut(
        id=q.id,
        created_at=q.created_at,
        company=q.company_id,
        invoice=q.invoice_id,
        decision=q.decision_id,
        risk_grade=q.risk_grade,
        grid_version=q.grid_version,
        amount=money(q.amount_cents, q.currency),
        duration_days=q.duration_days,
        daily_rate=rate(q.daily_rate),
        daily_fee=rate(p.daily_fee_cents),
        fee_per_extra_day=money(pricing.fee_cents(q.amount_cents, q.daily_rate, 1), q.currency),
        minimum_fee=money(p.minimum_fee_cents, q.currency),
        min_days=q.min_days,
        fee_at_maturity=money(p.fee_cents, q.currency),
        total_to_repay=money(p.total_cents, q.currency),
        annual_rate=rate(p.annual_rate),
        effective_annual_rate=rate(p.effective_annual_rate),
        late_daily_rate=rate(q.late_daily_rate),
        start_date=q.start_date,
        maturity_date=q.maturity_date,
        expires_at=q.expires_at,
        status=status,
    )


class AdvanceIn(InputModel):
    quote: ref("qte", "The quote to accept.")  # type: ignore[valid-type]
    supplier_iban: Iban | None = Field(
        default=None,
        description="A supplier's invoice (payables): the IBAN the supplier is paid to, when its "
        "e-invoice did not give one.",
    )


class Owed(BaseModel):
    principal: Money
    fees: Money
    late_interest: Money
    total: Money
    being_collected: Money


class AdvanceOut(Resource):
    object: Literal["advance"] = "advance"
    company: str
    invoice: str
    quote: str
    kind: AdvanceKind
    status: AdvanceStatus
    principal: Money
    risk_grade: str
    daily_rate: str
    late_daily_rate: str
    duration_days: int
    start_date: date = Field(description="The day the money reached the SME (fees count from the next day).")
    maturity_date: date
    disbursed_at: datetime | None
    repaid_at: datetime | None
    owed: Owed | None = Field(
        description="What is owed now, from the ledger (null until the money reached the SME)."
    )
    failure_code: str | None
    failure_message: str | None


def advance_out(a: Advance, owed: Any | None) -> AdvanceOut:
    c = a.currency
    return AdvanceOut(
        id=a.id,
        created_at=a.created_at,
        company=a.company_id,
        invoice=a.invoice_id,
        quote=a.quote_id,
        kind=a.kind,
        status=a.status,
        principal=money(a.principal_cents, c),
        risk_grade=a.risk_grade,
        daily_rate=rate(a.daily_rate),
        late_daily_rate=rate(a.late_daily_rate),
        duration_days=a.duration_days,
        start_date=a.start_date,
        maturity_date=a.maturity_date,
        disbursed_at=a.disbursed_at,
        repaid_at=a.repaid_at,
        owed=None
        if owed is None
        else Owed(
            principal=money(owed.principal_cents, c),
            fees=money(owed.fees_cents, c),
            late_interest=money(owed.late_interest_cents, c),
            total=money(owed.total_cents, c),
            being_collected=money(owed.pending_cents, c),
        ),
        failure_code=a.failure_code,
        failure_message=a.failure_message,
    )


class RepaymentIn(InputModel):
    method: Literal["sepa_debit", "collection_account"] = Field(
        default="sepa_debit",
        description="sepa_debit: debit the SME's mandate now (early repayment); collection_account "
        "(back-office, notified mode): money the debtor paid into the platform's collection account.",
    )
    amount: MoneyIn | None = Field(
        default=None,
        description="Default: everything owed (fees stop today). Required for collection_account.",
    )


class RepaymentOut(Resource):
    object: Literal["repayment"] = "repayment"
    advance: str
    source: RepaymentSource
    status: RepaymentStatus
    amount: Money
    late_interest: Money
    fees: Money
    principal: Money
    surplus: Money = Field(description="Paid above what was owed; owed back to the SME.")
    value_date: date
    reversible_until: date | None = Field(description="A SEPA Core debit can be disputed for 8 weeks.")
    failure_code: str | None


def repayment_out(r: Repayment) -> RepaymentOut:
    c = r.currency
    return RepaymentOut(
        id=r.id,
        created_at=r.created_at,
        advance=r.advance_id,
        source=r.source,
        status=r.status,
        amount=money(r.amount_cents, c),
        late_interest=money(r.late_interest_cents, c),
        fees=money(r.fee_cents, c),
        principal=money(r.principal_cents, c),
        surplus=money(r.surplus_cents, c),
        value_date=r.value_date,
        reversible_until=r.reversible_until,
        failure_code=r.failure_code,
    )


class ExtendIn(InputModel):
    additional_days: int = Field(ge=1, le=117, description="Days to add; the advance lasts 120 days at most.")


class EscalationIn(InputModel):
    status: Literal["in_collections", "defaulted", "written_off"] = Field(
        description="in_collections: an overdue advance goes to collection; defaulted: a provision "
        "for everything owed is booked; written_off: what is still owed is booked as a loss."
    )
    reason: text(300) = Field(  # type: ignore[valid-type]
        description="Why, in the back-office's words (kept on the event and the ledger memo)."
    )


class MandateIn(InputModel):
    ip_address: text(45) = Field(description="Where the SME accepted the SEPA mandate.")  # type: ignore[valid-type]
    user_agent: text(400)  # type: ignore[valid-type]


class PaymentProfileIn(InputModel):
    iban: Iban = Field(description="The SME's IBAN: payouts go there and repayments are debited from it.")
    account_holder_name: text(200) | None = None  # type: ignore[valid-type]
    mandate: MandateIn


class PaymentProfileOut(BaseModel):
    object: Literal["payment_profile"] = "payment_profile"
    company: str
    payout_account: str
    payout_iban_last4: str | None
    customer: str
    mandate: str | None
    mandate_status: str
    mandate_accepted_at: datetime | None
    created_at: datetime


def profile_out(p: PaymentProfile) -> PaymentProfileOut:
    return PaymentProfileOut(
        company=p.company_id,
        payout_account=p.stripe_account_id,
        payout_iban_last4=p.payout_iban_last4,
        customer=p.stripe_customer_id,
        mandate=p.stripe_mandate_id,
        mandate_status=p.mandate_status,
        mandate_accepted_at=p.mandate_accepted_at,
        created_at=p.created_at,
    )


class GridIn(InputModel):
    settings: dict[str, Any] = Field(
        description="daily_rates {A..E: fraction per day}, late_daily_rate, min_days, quote_ttl_minutes."
    )
    note: text(500) | None = None  # type: ignore[valid-type]


class GridOut(BaseModel):
    object: Literal["pricing_grid"] = "pricing_grid"
    version: int
    daily_rates: dict[str, str]
    late_daily_rate: str
    min_days: int
    quote_ttl_minutes: int
    note: str | None
    created_at: datetime


def grid_out(g: PricingGrid) -> GridOut:
    s = pricing.GridSettings.model_validate(g.settings)
    return GridOut(
        version=g.version,
        daily_rates={k: rate(v) for k, v in s.daily_rates.items()},
        late_daily_rate=rate(s.late_daily_rate),
        min_days=s.min_days,
        quote_ttl_minutes=s.quote_ttl_minutes,
        note=g.note,
        created_at=g.created_at,
    )


class PaymentFileOut(BaseModel):
    object: Literal["payment_file"] = "payment_file"
    id: str
    format: str
    transactions: int
    total: Money
    execution_date: date
    created_at: datetime
    download: str = Field(description="GET this path for the pain.001 XML to send to the bank.")


def payment_file_out(f: Any) -> PaymentFileOut:
    return PaymentFileOut(
        id=f.id,
        format=f.format,
        transactions=f.transactions,
        total=money(f.total_cents, "EUR"),
        execution_date=f.execution_date,
        created_at=f.created_at,
        download=f"/v1/payment-files/{f.id}",
    )


class StatementOut(BaseModel):
    object: Literal["platform_statement"] = "platform_statement"
    confirmed: list[str] = Field(description="Credit transfers seen leaving: their advances started.")
    returned: list[str] = Field(description="Credit transfers returned: their advances failed.")
    unknown: list[str] = Field(description="End-to-end ids that are not ours (left alone).")
    mismatched: list[str] = Field(
        description="Ours, but another amount or a return after start: back-office."
    )
