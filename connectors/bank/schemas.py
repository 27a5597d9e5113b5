"""Bank data shapes: the aggregator push (JSON batch), the bank resources the API
returns, and the options of a bank CSV import."""

from __future__ import annotations

import codecs
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, field_validator, model_validator

from escompte.companies.schemas import Bic, Iban
from escompte.schemas import MAX_AMOUNT_CENTS, InputModel, IsoDate, Money, Resource, money, text

MAX_BATCH_TRANSACTIONS = 1000
MAX_BATCH_BALANCES = 400

BankCurrency = Annotated[
    str,
    Field(
        pattern=r"^[A-Z]{3}$",
        description="ISO 4217 code of the account's currency (bank data is stored in any currency; "
        "financing is in EUR).",
        examples=["EUR"],
    ),
]


class SignedMoneyIn(InputModel):
    """An amount in minor units (cents), signed: credits > 0, debits < 0."""

    amount: int = Field(
        ge=-MAX_AMOUNT_CENTS,
        le=MAX_AMOUNT_CENTS,
        description="Signed amount in cents: money in > 0, money out < 0.",
    )
    currency: BankCurrency


class TransactionMoneyIn(SignedMoneyIn):
    amount: int = Field(
        ge=-MAX_AMOUNT_CENTS,
        le=MAX_AMOUNT_CENTS,
        description="Signed amount in cents, never 0: money in > 0, money out < 0.",
        json_schema_extra={"not": {"const": 0}},
    )

    @field_validator("amount")
    @classmethod
    def _not_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("a bank transaction's amount cannot be 0")
        return value


class PushAccount(InputModel):
    iban: Iban
    name: text(200) | None = None  # type: ignore[valid-type]
    bic: Bic | None = None
    currency: BankCurrency | None = Field(
        default=None, description="Defaults to the currency of the batch's first amount, else EUR."
    )


class PushCounterparty(InputModel):
    name: text(200) | None = None  # type: ignore[valid-type]
    iban: Iban | None = None


class PushTransaction(InputModel):
    id: text(120) | None = Field(  # type: ignore[valid-type]
        default=None,
        description="The aggregator's id of the transaction. Strongly advised: it is what makes "
        "a transaction pushed twice count once. Without it a hash of the transaction's fields "
        "is used, and identical transactions are told apart only within one batch.",
    )
    booking_date: IsoDate
    value_date: IsoDate | None = None
    amount: TransactionMoneyIn
    counterparty: PushCounterparty | None = None
    remittance_information: text(2000) | None = None  # type: ignore[valid-type]
    structured_reference: text(64) | None = Field(  # type: ignore[valid-type]
        default=None, description="Structured creditor reference, e.g. RF18539007547034."
    )
    end_to_end_id: text(64) | None = None  # type: ignore[valid-type]
    bank_transaction_code: text(40) | None = Field(  # type: ignore[valid-type]
        default=None, description="ISO 20022 domain/family/sub-family, e.g. PMNT/RCDT/ESCT."
    )


BalanceKind = Literal["OPBD", "CLBD", "ITBD", "PRCD", "OPAV", "CLAV", "ITAV", "FWAV", "XPCD", "INFO"]


class PushBalance(InputModel):
    date: IsoDate
    amount: SignedMoneyIn
    kind: BalanceKind = Field(
        default="CLBD", description="ISO 20022 balance type: CLBD closing booked, OPBD opening booked …"
    )


class BankTransactionBatch(InputModel):
    """One account's booked transactions and balances, as an aggregator pushes them
    (pending transactions wait until the bank books them: a booked movement also read
    from the account's statements is recognised by its booking date and amount)."""

    account: PushAccount
    transactions: list[PushTransaction] = Field(default_factory=list, max_length=MAX_BATCH_TRANSACTIONS)
    balances: list[PushBalance] = Field(default_factory=list, max_length=MAX_BATCH_BALANCES)


class BalanceCounts(BaseModel):
    created: int
    updated: int
    unchanged: int


class BankTransactionBatchOut(BaseModel):
    object: Literal["bank_transaction_batch"] = "bank_transaction_batch"
    bank_account: str = Field(description="The account's id (bac_…), created on its first push.")
    created: int = Field(description="Transactions new to Escompte.")
    unchanged: int = Field(description="Transactions Escompte already had (pushed or imported before).")
    known_from_other_sources: int = Field(
        description="Transactions new from this aggregator that are movements Escompte already had "
        "from a statement import of the account (same booking date and amount): linked to them, "
        "not stored twice; their ids in `transactions` are the known transactions'."
    )
    transactions: list[str] = Field(description="The id of each pushed transaction, in the batch's order.")
    balances: BalanceCounts


# --- resources ----------------------------------------------------------------------------


class CounterpartyOut(BaseModel):
    name: str | None
    iban: str | None


class BankTransactionOut(Resource):
    object: Literal["bank_transaction"] = "bank_transaction"
    company: str
    bank_account: str
    data_import: str | None = Field(description="The import (imp_…) that brought it; null when pushed.")
    external_id: str | None = Field(description="The bank's or aggregator's own id.")
    source: Literal["camt", "ofx", "csv", "agg"] = Field(
        description="Where it was first read: a camt.053 statement, an OFX or CSV export, an "
        "aggregator's push. The same movement read later from another source is not stored again."
    )
    booking_date: date
    value_date: date | None
    amount: Money = Field(description="Signed: money in > 0, money out < 0.")
    counterparty: CounterpartyOut
    remittance_information: str | None
    structured_reference: str | None
    end_to_end_id: str | None
    bank_transaction_code: str | None
    match_status: Literal["unmatched", "partially_matched", "matched", "ignored"]
    matched: Money = Field(description="How much of the amount is matched with invoices.")


def bank_transaction_out(t: Any) -> BankTransactionOut:
    return BankTransactionOut(
        id=t.id,
        created_at=t.created_at,
        company=t.company_id,
        bank_account=t.bank_account_id,
        data_import=t.import_id,
        external_id=t.external_id,
        source=t.source,
        booking_date=t.booking_date,
        value_date=t.value_date,
        amount=money(t.amount_cents, t.currency),
        counterparty=CounterpartyOut(name=t.counterparty_name, iban=t.counterparty_iban),
        remittance_information=t.remittance_info,
        structured_reference=t.structured_reference,
        end_to_end_id=t.end_to_end_id,
        bank_transaction_code=t.bank_code,
        match_status=t.match_status.value if hasattr(t.match_status, "value") else t.match_status,
        matched=money(t.matched_cents, t.currency),
    )


class BalanceOut(BaseModel):
    date: date
    kind: str
    amount: Money


class BankAccountOut(Resource):
    object: Literal["bank_account"] = "bank_account"
    company: str
    iban: str
    bic: str | None
    name: str | None
    currency: str
    latest_balance: BalanceOut | None = Field(
        description="The most recent balance known (closing booked preferred on a given day)."
    )


def bank_account_out(a: Any, balance: Any | None) -> BankAccountOut:
    return BankAccountOut(
        id=a.id,
        created_at=a.created_at,
        company=a.company_id,
        iban=a.iban,
        bic=a.bic,
        name=a.name,
        currency=a.currency,
        latest_balance=None
        if balance is None
        else BalanceOut(
            date=balance.balance_date, kind=balance.kind, amount=money(balance.amount_cents, balance.currency)
        ),
    )


# --- CSV import options ----------------------------------------------------------------------

CSV_FIELDS = (
    "booking_date",
    "value_date",
    "amount",
    "debit",
    "credit",
    "label",
    "counterparty_name",
    "counterparty_iban",
    "reference",
    "structured_reference",
    "end_to_end_id",
    "bank_code",
    "currency",
)


def _encoding(value: str) -> str:
    try:
        codecs.lookup(value)
    except LookupError:
        raise ValueError(f"unknown encoding {value!r} (e.g. utf-8, cp1252, latin-1)") from None
    return value


def _date_format(value: str) -> str:
    probe = date(2031, 12, 25)
    try:
        written = probe.strftime(value)
        if datetime.strptime(written, value).date() != probe:  # noqa: DTZ007 (a calendar day)
            raise ValueError
    except ValueError:
        raise ValueError(
            f"{value!r} is not a date format with day, month and year (e.g. %d/%m/%Y or %Y-%m-%d)"
        ) from None
    return value


class BankCsvOptions(InputModel):
    """How to read a bank's CSV export: which column holds what, and how values are written."""

    mapping: dict[str, text(200)] = Field(  # type: ignore[valid-type]
        description="Escompte field → the column's header in the file. booking_date and either "
        "amount (signed) or debit and credit are required."
    )
    iban: Iban = Field(description="The account the export is for (CSV exports rarely say it).")
    account_name: text(200) | None = None  # type: ignore[valid-type]
    currency: BankCurrency = "EUR"
    date_format: Annotated[str, AfterValidator(_date_format)] = "%d/%m/%Y"
    decimal: Literal[",", "."] = ","
    delimiter: Literal[";", ",", "\t", "|"] = ";"
    quotechar: Literal['"', "'"] = '"'
    encoding: Annotated[str, AfterValidator(_encoding)] = "utf-8"
    skip_lines: int = Field(default=0, ge=0, le=50, description="Lines above the header row (a title …).")

    @field_validator("mapping")
    @classmethod
    def _known_fields(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(CSV_FIELDS))
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(CSV_FIELDS)}")
        return value

    @model_validator(mode="after")
    def _amount_columns(self) -> BankCsvOptions:
        mapping = self.mapping
        if "booking_date" not in mapping:
            raise ValueError("mapping.booking_date is required: the column of the booking date")
        has_split = "debit" in mapping or "credit" in mapping
        if "amount" in mapping and has_split:
            raise ValueError("map either amount (signed) or debit and credit, not both")
        if "amount" not in mapping and not ("debit" in mapping and "credit" in mapping):
            raise ValueError("mapping needs amount (a signed amount column) or both debit and credit")
        return self
