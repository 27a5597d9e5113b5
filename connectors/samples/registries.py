"""Registry extracts in their published shapes: an INSEE StockUniteLegale CSV and a
BODACC "annonces commerciales" export (tests, benchmarks, the demo)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import IO

# The columns of the INSEE stock file, in its order.
SIRENE_COLUMNS = (
    "siren",
    "statutDiffusionUniteLegale",
    "unitePurgeeUniteLegale",
    "dateCreationUniteLegale",
    "sigleUniteLegale",
    "sexeUniteLegale",
    "prenom1UniteLegale",
    "prenom2UniteLegale",
    "prenom3UniteLegale",
    "prenom4UniteLegale",
    "prenomUsuelUniteLegale",
    "pseudonymeUniteLegale",
    "identifiantAssociationUniteLegale",
    "trancheEffectifsUniteLegale",
    "anneeEffectifsUniteLegale",
    "dateDernierTraitementUniteLegale",
    "nombrePeriodesUniteLegale",
    "categorieEntreprise",
    "anneeCategorieEntreprise",
    "dateDebut",
    "etatAdministratifUniteLegale",
    "nomUniteLegale",
    "nomUsageUniteLegale",
    "denominationUniteLegale",
    "denominationUsuelle1UniteLegale",
    "denominationUsuelle2UniteLegale",
    "denominationUsuelle3UniteLegale",
    "categorieJuridiqueUniteLegale",
    "activitePrincipaleUniteLegale",
    "nomenclatureActivitePrincipaleUniteLegale",
    "nicSiegeUniteLegale",
    "economieSocialeSolidaireUniteLegale",
    "societeMissionUniteLegale",
    "caractereEmployeurUniteLegale",
)

# The columns of the BODACC export (opendatasoft "annonces-commerciales"), in its order.
BODACC_COLUMNS = (
    "id",
    "publicationavis",
    "publicationavis_facette",
    "typeavis",
    "typeavis_lib",
    "familleavis",
    "familleavis_lib",
    "numerodepartement",
    "departement_nom_officiel",
    "region_code",
    "region_nom_officiel",
    "tribunal",
    "commercant",
    "ville",
    "registre",
    "cp",
    "dateparution",
    "numeroannonce",
    "listepersonnes",
    "jugement",
    "acte",
    "modificationsgenerales",
    "radiationaurcs",
    "depot",
    "listeprecedentexploitant",
    "listeprecedentproprietaire",
    "divers",
    "parutionavisprecedent",
)


@dataclass(frozen=True)
class LegalUnit:
    siren: str
    name: str = ""  # a company's denomination
    last_name: str = ""  # or a natural person's name
    first_name: str = ""
    active: bool = True
    created_on: date | None = date(2010, 1, 4)
    period_start: date | None = date(2010, 1, 4)  # dateDebut: when the current state began
    legal_form: str = "5710"  # SAS
    naf_code: str = "62.01Z"


@dataclass(frozen=True)
class Announcement:
    id: str  # e.g. A202400012345
    sirens: tuple[str, ...]
    nature: str  # e.g. "Jugement d'ouverture de liquidation judiciaire"
    judgment_date: date | None
    published_on: date
    court: str = "TRIBUNAL DE COMMERCE DE PARIS"
    name: str = "EXEMPLE SAS"
    family: str = "Procédures collectives"
    notice_type: str = "Avis initial"


def write_sirene(out: IO[bytes], units: Iterable[LegalUnit]) -> None:
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
    writer = csv.DictWriter(text, fieldnames=SIRENE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for u in units:
        writer.writerow(
            {
                **dict.fromkeys(SIRENE_COLUMNS, ""),
                "siren": u.siren,
                "statutDiffusionUniteLegale": "O",
                "dateCreationUniteLegale": u.created_on.isoformat() if u.created_on else "",
                "prenom1UniteLegale": u.first_name,
                "dateDebut": u.period_start.isoformat() if u.period_start else "",
                "etatAdministratifUniteLegale": "A" if u.active else "C",
                "nomUniteLegale": u.last_name,
                "denominationUniteLegale": u.name,
                "categorieJuridiqueUniteLegale": u.legal_form,
                "activitePrincipaleUniteLegale": u.naf_code,
                "nomenclatureActivitePrincipaleUniteLegale": "NAFRev2",
                "nicSiegeUniteLegale": "00012",
                "caractereEmployeurUniteLegale": "N",
            }
        )
    text.flush()
    text.detach()


def sirene_csv(units: Iterable[LegalUnit]) -> bytes:
    buffer = io.BytesIO()
    write_sirene(buffer, units)
    return buffer.getvalue()


def _registre(sirens: tuple[str, ...]) -> str:
    # the export lists each SIREN formatted and plain: "833 310 592,833310592"
    return ",".join(part for s in sirens for part in (f"{s[:3]} {s[3:6]} {s[6:]}", s))


def write_bodacc(out: IO[bytes], announcements: Iterable[Announcement]) -> None:
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
    writer = csv.DictWriter(text, fieldnames=BODACC_COLUMNS, delimiter=";", lineterminator="\n")
    writer.writeheader()
    for a in announcements:
        collective = a.family == "Procédures collectives"
        judgment = {
            "type": "initial",
            "famille": a.nature.split(" de ")[0] if a.nature else "",
            "nature": a.nature,
            "date": a.judgment_date.isoformat() if a.judgment_date else "",
            "complementJugement": f"{a.nature}. Mandataire judiciaire désigné.",
        }
        writer.writerow(
            {
                **dict.fromkeys(BODACC_COLUMNS, ""),
                "id": a.id,
                "publicationavis": "A",
                "publicationavis_facette": "Bodacc A",
                "typeavis": "annulation" if "annulation" in a.notice_type.lower() else "annonce",
                "typeavis_lib": a.notice_type,
                "familleavis": "collective" if collective else "creation",
                "familleavis_lib": a.family,
                "tribunal": a.court,
                "commercant": a.name,
                "registre": _registre(a.sirens),
                "dateparution": a.published_on.isoformat(),
                "numeroannonce": a.id[-4:].lstrip("0") or "1",
                "listepersonnes": json.dumps(
                    {"personne": {"typePersonne": "pm", "denomination": a.name}}, ensure_ascii=False
                ),
                "jugement": json.dumps(judgment, ensure_ascii=False) if collective else "",
            }
        )
    text.flush()
    text.detach()


def bodacc_csv(announcements: Iterable[Announcement]) -> bytes:
    buffer = io.BytesIO()
    write_bodacc(buffer, announcements)
    return buffer.getvalue()
