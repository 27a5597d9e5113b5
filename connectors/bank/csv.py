"""Bank CSV exports, read through a column mapping declared in the import's options.

Banks export CSV in as many layouts as there are banks, so nothing is guessed: the
import says which column holds what (``mapping``), for which account (``iban``) and how
values are written (``date_format``, ``decimal``, ``delimiter``, ``encoding`` …), see
``BankCsvOptions``. The mapping is checked against the header row before any line is
read; every error names its line and column.

Amounts: one signed ``amount`` column, or ``debit`` and ``credit`` columns (a debit is
money out whatever its written sign). Thousands separators are accepted when they
group digits by three (``1 234,56``, ``1.234,56`` with a decimal comma). A ``reference``
column, when mapped, must be the bank's own unique id of the line: it becomes the
transaction's id (two different lines with one reference are refused).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from datetime import date, datetime

from pydantic import ValidationError

from escompte.connectors.bank.accounts import (
    NAME_MAX,
    REFERENCE_MAX,
    REMITTANCE_MAX,
    AccountRef,
    BankDataError,
    BankLine,
    BankWriter,
    check_currency,
    check_date,
    clean_text,
    import_outcome,
    normalize_iban,
    parse_amount,
)
from escompte.connectors.bank.schemas import BankCsvOptions
from escompte.connectors.base import ImportContext, ImportOutcome
from escompte.errors import invariant

Cell = Callable[[str], str | None]  # a mapped field's value on the current line
Fail = Callable[[str, str], None]  # report an error on a mapped field of the current line

_BLANKS = str.maketrans("", "", " \u00a0\u202f\u2009'")
_CURRENCY_MARKS = ("€", "EUR")


def import_bank_csv(ctx: ImportContext) -> ImportOutcome:
    company = ctx.company
    invariant(company is not None, "a bank statement belongs to a company")
    assert company is not None
    options = _options(ctx)
    with BankWriter(
        ctx.session, ctx.clock.now(), company_id=company.id, source="csv", import_id=ctx.data_import.id
    ) as writer:
        try:
            account = writer.account(options.iban, currency=options.currency, name=options.account_name)
        except BankDataError as exc:
            ctx.issues.add(f"The account cannot be used: {exc}.", field="options.iban")
            ctx.issues.raise_if_any()
        skipped = _read(ctx, options, writer, account)
        ctx.issues.raise_if_any()
        result = writer.finish()
    return import_outcome(result, **({"bank_entries_zero_amount": skipped} if skipped else {}))


def _read(ctx: ImportContext, options: BankCsvOptions, writer: BankWriter, account: AccountRef) -> int:
    """Check and stage every line; returns how many had a zero amount (skipped)."""
    stream = ctx.open_stream()
    utf8 = options.encoding.lower().replace("_", "-") in ("utf-8", "utf8")
    text = io.TextIOWrapper(stream, encoding="utf-8-sig" if utf8 else options.encoding, newline="")
    skipped = 0
    try:
        reader = csv.reader(text, delimiter=options.delimiter, quotechar=options.quotechar, strict=False)
        columns = _header(ctx, reader, options)
        if columns is None:
            return 0
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            line = _line(ctx, options, columns, row, reader.line_num)
            if line is None:
                continue
            if line.amount_cents == 0:
                skipped += 1
                continue
            if ctx.issues:
                continue  # refused anyway: keep checking the rest, stop staging
            try:
                writer.add(account, line)
            except BankDataError as exc:
                ctx.issues.add(f"Line {reader.line_num}: {exc}.", line=reader.line_num)
            if reader.line_num % 10_000 == 0:
                ctx.progress(reader.line_num, 0)
    except UnicodeDecodeError:
        ctx.issues.add(
            f"The file is not written in {options.encoding}: say its encoding with the `encoding` "
            "option (banks often export cp1252 or latin-1).",
            field="options.encoding",
        )
    except csv.Error as exc:
        ctx.issues.add(f"The file is not readable CSV: {exc}.")
    finally:
        text.detach()
        stream.close()
    return skipped


def _options(ctx: ImportContext) -> BankCsvOptions:
    try:
        return BankCsvOptions.model_validate(ctx.options)
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(part) for part in error.get("loc", ()))
            message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
            ctx.issues.add(
                f"Import option {('`' + where + '`') if where else ''} {message}.".replace("  ", " "),
                field=f"options.{where}" if where else "options",
            )
        ctx.issues.raise_if_any()
        raise  # unreachable: raise_if_any raised


def _header(ctx: ImportContext, rows: Iterator[list[str]], options: BankCsvOptions) -> dict[str, int] | None:
    """Column index of each mapped field; errors for mapped columns the header lacks."""
    header: list[str] | None = None
    for _ in range(options.skip_lines + 1):
        header = next(rows, None)
    line = options.skip_lines + 1
    if header is None:
        ctx.issues.add("The file has no header row.", line=line)
        return None
    names = [cell.strip().lstrip("\ufeff") for cell in header]
    columns: dict[str, int] = {}
    for field, column in options.mapping.items():
        matches = [i for i, name in enumerate(names) if name == column]
        if len(matches) == 1:
            columns[field] = matches[0]
            continue
        if len(matches) > 1:
            message = f"Column {column!r} (mapping.{field}) appears {len(matches)} times in the header."
        else:
            close = [name for name in names if name.casefold() == column.casefold()]
            hint = f" Did you mean {close[0]!r}?" if close else ""
            message = (
                f"Column {column!r} (mapping.{field}) is not in the header row; its columns are: "
                f"{', '.join(repr(n) for n in names)[:500]}.{hint}"
            )
        ctx.issues.add(message, line=line, field=f"options.mapping.{field}")
    return None if ctx.issues else columns


def _line(
    ctx: ImportContext, options: BankCsvOptions, columns: dict[str, int], row: list[str], line: int
) -> BankLine | None:
    mapping = options.mapping
    failed = False

    def cell(field: str) -> str | None:
        index = columns.get(field)
        if index is None or index >= len(row):
            return None
        return row[index].strip() or None

    def error(field: str, message: str) -> None:
        nonlocal failed
        failed = True
        column = mapping[field]
        ctx.issues.add(f"Line {line}, column {column!r}: {message}.", line=line, field=column)

    currency = cell("currency") or options.currency
    if "currency" in columns:
        try:
            check_currency(currency)
        except BankDataError as exc:
            error("currency", str(exc))
            currency = options.currency
    booking = _date(cell("booking_date"), options.date_format)
    if booking is None:
        error("booking_date", f"{cell('booking_date') or ''!r} is not a date written {options.date_format}")
    value_date = None
    if cell("value_date") is not None:
        value_date = _date(cell("value_date"), options.date_format)
        if value_date is None:
            error("value_date", f"{cell('value_date')!r} is not a date written {options.date_format}")
    cents = _signed_amount(options, cell, error, currency)
    counterparty_iban = cell("counterparty_iban")
    if counterparty_iban is not None:
        try:
            counterparty_iban = normalize_iban(counterparty_iban)
        except BankDataError as exc:
            error("counterparty_iban", str(exc))
    if failed or booking is None or cents is None:
        return None
    return BankLine(
        booking_date=booking,
        amount_cents=cents,
        currency=currency,
        value_date=value_date,
        counterparty_name=clean_text(cell("counterparty_name"), NAME_MAX),
        counterparty_iban=counterparty_iban,
        remittance_info=clean_text(cell("label"), REMITTANCE_MAX),
        structured_reference=clean_text(cell("structured_reference"), REFERENCE_MAX),
        end_to_end_id=clean_text(cell("end_to_end_id"), REFERENCE_MAX),
        bank_code=clean_text(cell("bank_code"), 40),
        external_id=clean_text(cell("reference"), 120),
    )


def _signed_amount(options: BankCsvOptions, read: Cell, fail: Fail, currency: str) -> int | None:
    if "amount" in options.mapping:
        raw = read("amount")
        if raw is None:
            fail("amount", "the amount is empty")
            return None
        try:
            return _amount(raw, options.decimal, currency)
        except BankDataError as exc:
            fail("amount", str(exc))
            return None
    values: dict[str, int] = {}
    for field in ("debit", "credit"):
        raw = read(field)
        if raw is None:
            continue
        try:
            values[field] = abs(_amount(raw, options.decimal, currency))
        except BankDataError as exc:
            fail(field, str(exc))
            return None
    debit, credit = values.get("debit", 0), values.get("credit", 0)
    if debit and credit:
        fail("credit", "both debit and credit are filled in")
        return None
    if "debit" not in values and "credit" not in values:
        fail("debit", "both debit and credit are empty")
        return None
    return credit - debit


_GROUPED = {",": re.compile(r"^\d{1,3}(\.\d{3})+(,\d+)?$"), ".": re.compile(r"^\d{1,3}(,\d{3})+(\.\d+)?$")}


def _amount(raw: str, decimal_mark: str, currency: str) -> int:
    """``-1 234,56 €`` → -123456 (the written sign is kept)."""
    value = raw.translate(_BLANKS)
    for mark in _CURRENCY_MARKS:
        value = value.removesuffix(mark).removeprefix(mark)
    negative = value.startswith("-") or value.endswith("-")
    value = value.strip("+-")
    thousands = "." if decimal_mark == "," else ","
    if thousands in value:
        if not _GROUPED[decimal_mark].match(value):
            raise BankDataError(f"{raw!r} is not an amount with {decimal_mark!r} as decimal mark")
        value = value.replace(thousands, "")
    try:
        cents = parse_amount(value, currency, decimal_mark=decimal_mark)
    except BankDataError:
        raise BankDataError(f"{raw!r} is not an amount with {decimal_mark!r} as decimal mark") from None
    return -cents if negative else cents


def _date(raw: str | None, date_format: str) -> date | None:
    if raw is None:
        return None
    try:
        return check_date(datetime.strptime(raw, date_format).date())  # noqa: DTZ007 (a calendar day)
    except (ValueError, BankDataError):
        return None
