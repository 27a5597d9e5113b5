"""Registry extracts: SIRENE (is the company active?) and BODACC (collective proceedings).

Both are CSV files read as a stream (the full SIRENE stock is several GB), validated
line by line and written in batches; any error refuses the whole file (the caller rolls
back), with each error's line. The accepted columns are in docs/formats-registries.md.

- SIRENE, the INSEE "StockUniteLegale" extract (comma-separated, UTF-8): one
  ``RegistryCompany`` per SIREN, upserted; ``active`` from etatAdministratifUniteLegale
  (A active, C ceased), ``ceased_on`` = dateDebut of the current period when ceased.
- BODACC, the "annonces commerciales" export (semicolon-separated): announcements of
  the family "Procédures collectives" become ``InsolvencyProceeding`` rows, one per
  announcement id (and per SIREN when one announcement names several), with a kind
  read from the judgment's nature. Announcements of other families are skipped.

Importing the same extract again changes nothing (counted as unchanged).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import IO, Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session
from stdnum.fr import siren as std_siren

from escompte.connectors.base import ImportContext, ImportIssue, ImportOutcome, ImportRefused
from escompte.connectors.reconciliation import fold
from escompte.models import InsolvencyProceeding, RegistryCompany

BATCH_ROWS = 5_000
MAX_COLUMNS = 200
_ND = "[ND]"  # "non diffusible": INSEE hides the name of some natural persons


class ProceedingKind(StrEnum):
    SAUVEGARDE = "sauvegarde"
    REDRESSEMENT = "redressement"
    LIQUIDATION = "liquidation"
    PLAN = "plan"
    CLOTURE = "cloture"
    OTHER = "other"


# A debtor in one of these is under collective proceedings (no 40 € indemnity, no
# financing); "cloture" ends them, "other" (an extension, a claims notice …) says nothing.
UNDER_PROCEEDINGS = frozenset(
    {ProceedingKind.SAUVEGARDE, ProceedingKind.REDRESSEMENT, ProceedingKind.LIQUIDATION, ProceedingKind.PLAN}
)


def proceeding_kind(nature: str) -> ProceedingKind:
    """The kind of a BODACC judgment from its nature, e.g. "Jugement d'ouverture de
    liquidation judiciaire" → liquidation. Order matters: a closure or a conversion into
    liquidation mentions the earlier procedure too."""
    words = fold(nature)
    if "CLOTURE" in words or "METTANT FIN" in words:
        return ProceedingKind.CLOTURE
    if "LIQUIDATION" in words:
        return ProceedingKind.LIQUIDATION
    if "PLAN" in words and any(w in words for w in ("ARRET", "ADOPT", "HOMOLOG", "MODIFI")):
        return ProceedingKind.PLAN
    if "REDRESSEMENT" in words:
        return ProceedingKind.REDRESSEMENT
    if "SAUVEGARDE" in words:
        return ProceedingKind.SAUVEGARDE
    return ProceedingKind.OTHER


def debtor_registry_status(session: Session, siren: str) -> tuple[bool | None, ProceedingKind | None]:
    """(active per SIRENE or None if unknown, kind of the latest BODACC proceeding that
    says something — "other" ignored — or None). For eligibility: a debtor not active,
    or whose latest kind is in UNDER_PROCEEDINGS, is not a debtor to finance."""
    active = session.execute(
        select(RegistryCompany.active).where(RegistryCompany.siren == siren)
    ).scalar_one_or_none()
    kind = session.execute(
        select(InsolvencyProceeding.kind)
        .where(InsolvencyProceeding.siren == siren, InsolvencyProceeding.kind != ProceedingKind.OTHER.value)
        .order_by(InsolvencyProceeding.judgment_date.desc(), InsolvencyProceeding.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    return active, ProceedingKind(kind) if kind else None


# --- reading ----------------------------------------------------------------------------


class _Counting(io.RawIOBase):
    """Counts the bytes read from the stored file (for progress)."""

    def __init__(self, inner: IO[bytes]) -> None:
        self._inner = inner
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._inner.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.count += n
        return n


@dataclass(frozen=True)
class _Row:
    line: int
    values: dict[str, str]


def _rows(ctx: ImportContext, required: tuple[str, ...], default_delimiter: str) -> Iterator[_Row]:
    """Rows as {lower-case column: stripped value}; refuses the file at once when the
    header lacks a required column or the bytes are not UTF-8."""
    counting = _Counting(ctx.open_stream())
    stream = io.TextIOWrapper(io.BufferedReader(counting), encoding="utf-8-sig", newline="")
    line = 1
    try:
        header_line = stream.readline()
        delimiter = max((",", ";", "\t"), key=lambda d: (header_line.count(d), d == default_delimiter))
        header = [h.strip().strip('"').lower() for h in next(csv.reader([header_line], delimiter=delimiter))]
        missing = [c for c in required if c.lower() not in header]
        if missing or len(header) > MAX_COLUMNS:
            raise ImportRefused(
                [
                    ImportIssue(
                        f"missing column(s): {', '.join(missing)}" if missing else "too many columns", line=1
                    )
                ]
            )
        reader = csv.reader(stream, delimiter=delimiter)
        done = 0
        for cells in reader:
            line = reader.line_num + 1
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue
            if len(cells) != len(header):
                ctx.issues.add(f"{len(cells)} fields where the header has {len(header)}", line=line)
                continue
            yield _Row(line, {h: c.strip() for h, c in zip(header, cells, strict=True)})
            done += 1
            if done % BATCH_ROWS == 0:
                ctx.progress(counting.count, ctx.size_bytes)
    except UnicodeDecodeError:
        ctx.issues.add("the file is not UTF-8 text", line=line)
    except csv.Error as exc:
        ctx.issues.add(f"unreadable CSV ({exc})", line=line)
    ctx.progress(counting.count, ctx.size_bytes)


def _valid_siren(value: str) -> str | None:
    compacted = "".join(value.split())
    return compacted if std_siren.is_valid(compacted) and len(compacted) == 9 else None


def _iso_date(value: str) -> date | None:
    """YYYY-MM-DD; raises ValueError on anything else that is not empty."""
    return date.fromisoformat(value[:10]) if value else None


_MONTHS = {
    "JANVIER": 1, "FEVRIER": 2, "MARS": 3, "AVRIL": 4, "MAI": 5, "JUIN": 6,
    "JUILLET": 7, "AOUT": 8, "SEPTEMBRE": 9, "OCTOBRE": 10, "NOVEMBRE": 11, "DECEMBRE": 12,
}  # fmt: skip
_FRENCH_DATE = re.compile(r"^(\d{1,2})(?:ER)?\s+([A-Z]+)\s+(\d{4})$")
_SLASH_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")


def _judgment_date(value: str) -> date | None:
    """2020-11-19, 19/11/2020 or "19 novembre 2020"; None when unreadable."""
    value = value.strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        pass
    folded = fold(value)
    try:
        if m := _SLASH_DATE.match(folded):
            return date(int(m[3]), int(m[2]), int(m[1]))
        if (m := _FRENCH_DATE.match(folded)) and m[2] in _MONTHS:
            return date(int(m[3]), _MONTHS[m[2]], int(m[1]))
    except ValueError:
        return None
    return None


@dataclass
class _Tally:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def add(self, session: Session, sql: str, params: dict[str, Any], batch: int) -> None:
        inserted = session.execute(text(sql), params).scalars().all()
        self.created += sum(1 for i in inserted if i)
        self.updated += sum(1 for i in inserted if not i)
        self.unchanged += batch - len(inserted)


# --- SIRENE -----------------------------------------------------------------------------

SIRENE_REQUIRED = ("siren", "etatAdministratifUniteLegale")

_UPSERT_COMPANIES = """
INSERT INTO registry_companies (siren, legal_name, active, ceased_on, legal_form, naf_code,
                                created_on, import_id, updated_at)
SELECT u.siren, u.legal_name, u.active, u.ceased_on, u.legal_form, u.naf_code, u.created_on,
       :import_id, :now
FROM unnest(CAST(:siren AS text[]), CAST(:legal_name AS text[]), CAST(:active AS boolean[]),
            CAST(:ceased_on AS date[]), CAST(:legal_form AS text[]), CAST(:naf_code AS text[]),
            CAST(:created_on AS date[]))
     AS u(siren, legal_name, active, ceased_on, legal_form, naf_code, created_on)
ON CONFLICT (siren) DO UPDATE SET
    legal_name = EXCLUDED.legal_name, active = EXCLUDED.active, ceased_on = EXCLUDED.ceased_on,
    legal_form = EXCLUDED.legal_form, naf_code = EXCLUDED.naf_code, created_on = EXCLUDED.created_on,
    import_id = EXCLUDED.import_id, updated_at = EXCLUDED.updated_at
WHERE (registry_companies.legal_name, registry_companies.active, registry_companies.ceased_on,
       registry_companies.legal_form, registry_companies.naf_code, registry_companies.created_on)
      IS DISTINCT FROM
      (EXCLUDED.legal_name, EXCLUDED.active, EXCLUDED.ceased_on, EXCLUDED.legal_form,
       EXCLUDED.naf_code, EXCLUDED.created_on)
RETURNING (xmax = 0)
"""


def _shown(value: str) -> str:
    return "" if value == _ND else value


def _sirene_name(v: dict[str, str]) -> str | None:
    name = _shown(v.get("denominationunitelegale", ""))
    if not name:
        first = _shown(v.get("prenomusuelunitelegale", "")) or _shown(v.get("prenom1unitelegale", ""))
        last = _shown(v.get("nomusageunitelegale", "")) or _shown(v.get("nomunitelegale", ""))
        name = " ".join(p for p in (first, last) if p)
    name = name or _shown(v.get("denominationusuelle1unitelegale", ""))
    return name[:200] or None


def import_sirene(ctx: ImportContext) -> ImportOutcome:
    batch: dict[str, tuple[Any, ...]] = {}
    tally = _Tally()
    rows = 0

    def flush() -> None:
        if batch and not ctx.issues:
            columns = list(zip(*batch.values(), strict=True))
            names = ("siren", "legal_name", "active", "ceased_on", "legal_form", "naf_code", "created_on")
            params: dict[str, Any] = {n: list(c) for n, c in zip(names, columns, strict=True)}
            params.update(import_id=ctx.data_import.id, now=ctx.clock.now())
            tally.add(ctx.session, _UPSERT_COMPANIES, params, len(batch))
        batch.clear()

    for row in _rows(ctx, SIRENE_REQUIRED, ","):
        v = row.values
        siren = _valid_siren(v["siren"])
        if siren is None:
            ctx.issues.add(
                f"SIREN {v['siren'][:20]!r} is not valid (9 digits, Luhn)", line=row.line, field="siren"
            )
            continue
        state = v["etatadministratifunitelegale"].upper()
        if state not in ("A", "C"):
            ctx.issues.add(
                f"etatAdministratifUniteLegale must be A or C, not {state[:10]!r}",
                line=row.line,
                field="etatAdministratifUniteLegale",
            )
            continue
        try:
            created_on = _iso_date(v.get("datecreationunitelegale", ""))
            period_start = _iso_date(v.get("datedebut", ""))
        except ValueError:
            ctx.issues.add(
                "dates are written YYYY-MM-DD", line=row.line, field="dateCreationUniteLegale/dateDebut"
            )
            continue
        legal_form = v.get("categoriejuridiqueunitelegale", "") or None
        naf_code = v.get("activiteprincipaleunitelegale", "") or None
        if (legal_form and len(legal_form) > 10) or (naf_code and len(naf_code) > 10):
            ctx.issues.add("legal form and NAF code are at most 10 characters", line=row.line)
            continue
        active = state == "A"
        batch[siren] = (
            siren,
            _sirene_name(v),
            active,
            None if active else period_start,
            legal_form,
            naf_code,
            created_on,
        )
        rows += 1
        if len(batch) >= BATCH_ROWS:
            flush()
    flush()
    return ImportOutcome(
        created=tally.created,
        updated=tally.updated,
        unchanged=tally.unchanged,
        counts={"registry_companies": rows},
    )


# --- BODACC -----------------------------------------------------------------------------

BODACC_REQUIRED = ("id", "registre", "dateparution", "jugement")

_UPSERT_PROCEEDINGS = """
INSERT INTO insolvency_proceedings (announcement_id, siren, kind, judgment_date, court, description,
                                    import_id)
SELECT u.announcement_id, u.siren, u.kind, u.judgment_date, u.court, u.description, :import_id
FROM unnest(CAST(:announcement_id AS text[]), CAST(:siren AS text[]), CAST(:kind AS text[]),
            CAST(:judgment_date AS date[]), CAST(:court AS text[]), CAST(:description AS text[]))
     AS u(announcement_id, siren, kind, judgment_date, court, description)
ON CONFLICT (announcement_id) DO UPDATE SET
    siren = EXCLUDED.siren, kind = EXCLUDED.kind, judgment_date = EXCLUDED.judgment_date,
    court = EXCLUDED.court, description = EXCLUDED.description, import_id = EXCLUDED.import_id
WHERE (insolvency_proceedings.siren, insolvency_proceedings.kind, insolvency_proceedings.judgment_date,
       insolvency_proceedings.court, insolvency_proceedings.description)
      IS DISTINCT FROM
      (EXCLUDED.siren, EXCLUDED.kind, EXCLUDED.judgment_date, EXCLUDED.court, EXCLUDED.description)
RETURNING (xmax = 0)
"""


def _collective(v: dict[str, str]) -> bool:
    if "familleavis_lib" in v:
        return fold(v["familleavis_lib"]) == "PROCEDURES COLLECTIVES"
    if "familleavis" in v:
        return v["familleavis"].lower() == "collective"
    return True  # an extract already filtered on the family


def _announcement_sirens(ctx: ImportContext, row: _Row) -> list[str] | None:
    """The distinct valid SIRENs of the registre column; None after an error."""
    sirens: list[str] = []
    for part in row.values["registre"].split(","):
        if not part.strip():
            continue
        siren = _valid_siren(part)
        if siren is None:
            ctx.issues.add(
                f"SIREN {part.strip()[:20]!r} is not valid (9 digits, Luhn)", line=row.line, field="registre"
            )
            return None
        if siren not in sirens:
            sirens.append(siren)
    return sirens


def _proceeding(ctx: ImportContext, row: _Row) -> tuple[str, date, str | None] | None:
    """(kind, judgment date, description) of an announcement; None after an error."""
    v = row.values
    judgment: dict[str, Any] = {}
    if v["jugement"]:
        try:
            parsed = json.loads(v["jugement"])
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            ctx.issues.add("jugement is not a JSON object", line=row.line, field="jugement")
            return None
        judgment = parsed
    nature = str(judgment.get("nature") or judgment.get("famille") or "")
    judged_on = _judgment_date(str(judgment.get("date") or "")) or _judgment_date(v["dateparution"])
    if judged_on is None:
        ctx.issues.add("no readable judgment date nor dateparution", line=row.line, field="dateparution")
        return None
    if "annulation" in (v.get("typeavis", "") + v.get("typeavis_lib", "")).lower():
        # a cancellation notice is kept for the record but says nothing by itself
        notice = v.get("typeavis_lib") or "Avis d'annulation"
        return ProceedingKind.OTHER.value, judged_on, f"{notice} : {nature}"[:500]
    return proceeding_kind(nature).value, judged_on, nature[:500] or None


def import_bodacc(ctx: ImportContext) -> ImportOutcome:
    batch: dict[str, tuple[Any, ...]] = {}
    tally = _Tally()
    rows = skipped = 0

    def flush() -> None:
        if batch and not ctx.issues:
            columns = list(zip(*batch.values(), strict=True))
            names = ("announcement_id", "siren", "kind", "judgment_date", "court", "description")
            params: dict[str, Any] = {n: list(c) for n, c in zip(names, columns, strict=True)}
            params["import_id"] = ctx.data_import.id
            tally.add(ctx.session, _UPSERT_PROCEEDINGS, params, len(batch))
        batch.clear()

    for row in _rows(ctx, BODACC_REQUIRED, ";"):
        v = row.values
        if not _collective(v):
            skipped += 1
            continue
        announcement = v["id"]
        if not announcement or len(announcement) > 50:
            ctx.issues.add("id is required (at most 50 characters)", line=row.line, field="id")
            continue
        sirens = _announcement_sirens(ctx, row)
        if not sirens:
            skipped += sirens is not None  # a person without a SIREN: nothing to attach it to
            continue
        proceeding = _proceeding(ctx, row)
        if proceeding is None:
            continue
        kind, judged_on, description = proceeding
        court = v.get("tribunal", "")[:200] or None
        for siren in sirens:
            key = announcement if len(sirens) == 1 else f"{announcement}:{siren}"
            batch[key] = (key, siren, kind, judged_on, court, description)
            rows += 1
        if len(batch) >= BATCH_ROWS:
            flush()
    flush()
    return ImportOutcome(
        created=tally.created,
        updated=tally.updated,
        unchanged=tally.unchanged,
        counts={"insolvency_proceedings": rows, "skipped": skipped},
    )
