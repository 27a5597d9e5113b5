"""SIRENE and BODACC extracts: imported all or nothing, re-imports change nothing, and the
registry status a debtor check reads."""

from __future__ import annotations

import hashlib
import io
from datetime import date

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from escompte.clock import FrozenClock
from escompte.connectors.base import Handler, ImportContext, ImportOutcome, ImportRefused
from escompte.connectors.registries import (
    ProceedingKind,
    debtor_registry_status,
    import_bodacc,
    import_sirene,
    proceeding_kind,
)
from escompte.connectors.samples.registries import Announcement, LegalUnit, bodacc_csv, sirene_csv
from escompte.ids import new_id
from escompte.models import DataImport, ImportKind, ImportStatus, InsolvencyProceeding, RegistryCompany
from tests import factories as f

ACTIVE, CEASED, PERSON = f.siren(), f.siren(), f.siren()


def _run(
    session: Session, clock: FrozenClock, handler: Handler, kind: ImportKind, data: bytes
) -> ImportOutcome:
    data_import = DataImport(
        id=new_id("imp"),
        company_id=None,
        kind=kind,
        status=ImportStatus.RUNNING,
        filename="extract.csv",
        content_sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        options={},
        created_at=clock.now(),
    )
    session.add(data_import)
    session.flush()
    ctx = ImportContext(
        session=session,
        clock=clock,
        company=None,
        data_import=data_import,
        open_stream=lambda: io.BytesIO(data),
        size_bytes=len(data),
        options={},
    )
    with session.begin_nested():  # all or nothing, as the import service runs it
        outcome = handler(ctx)
        ctx.issues.raise_if_any()
    return outcome


def _units() -> list[LegalUnit]:
    return [
        LegalUnit(siren=ACTIVE, name="Boulangerie Dupont"),
        LegalUnit(siren=CEASED, name="Ancienne SARL", active=False, period_start=date(2025, 6, 30)),
        LegalUnit(siren=PERSON, first_name="Jean", last_name="MARTIN", legal_form="1000", naf_code="47.11A"),
    ]


class TestSirene:
    def test_active_and_ceased_companies(self, session: Session, clock: FrozenClock) -> None:
        outcome = _run(session, clock, import_sirene, ImportKind.SIRENE, sirene_csv(_units()))
        assert (outcome.created, outcome.updated, outcome.unchanged) == (3, 0, 0)
        rows = {r.siren: r for r in session.execute(select(RegistryCompany)).scalars()}
        assert (rows[ACTIVE].active, rows[ACTIVE].ceased_on, rows[ACTIVE].legal_name) == (
            True,
            None,
            "Boulangerie Dupont",
        )
        assert (rows[CEASED].active, rows[CEASED].ceased_on) == (False, date(2025, 6, 30))
        assert (rows[PERSON].legal_name, rows[PERSON].legal_form, rows[PERSON].naf_code) == (
            "Jean MARTIN",
            "1000",
            "47.11A",
        )
        assert rows[ACTIVE].created_on == date(2010, 1, 4)

    def test_reimport_changes_nothing_then_updates_what_changed(
        self, session: Session, clock: FrozenClock
    ) -> None:
        _run(session, clock, import_sirene, ImportKind.SIRENE, sirene_csv(_units()))
        again = _run(session, clock, import_sirene, ImportKind.SIRENE, sirene_csv(_units()))
        assert (again.created, again.updated, again.unchanged) == (0, 0, 3)
        units = _units()
        units[0] = LegalUnit(
            siren=ACTIVE, name="Boulangerie Dupont", active=False, period_start=date(2026, 1, 31)
        )
        changed = _run(session, clock, import_sirene, ImportKind.SIRENE, sirene_csv(units))
        assert (changed.created, changed.updated, changed.unchanged) == (0, 1, 2)
        assert debtor_registry_status(session, ACTIVE) == (False, None)

    def test_bad_siren_refused_with_its_line(self, session: Session, clock: FrozenClock) -> None:
        units = [*_units(), LegalUnit(siren="123456789", name="Faux")]
        with pytest.raises(ImportRefused) as refused:
            _run(session, clock, import_sirene, ImportKind.SIRENE, sirene_csv(units))
        assert [(i.line, i.field) for i in refused.value.issues] == [(5, "siren")]
        assert session.execute(select(func.count()).select_from(RegistryCompany)).scalar_one() == 0

    def test_unknown_state_and_missing_column_refused(self, session: Session, clock: FrozenClock) -> None:
        data = sirene_csv(_units()).replace(b",A,", b",X,", 1)
        with pytest.raises(ImportRefused) as refused:
            _run(session, clock, import_sirene, ImportKind.SIRENE, data)
        assert refused.value.issues[0].field == "etatAdministratifUniteLegale"
        with pytest.raises(ImportRefused) as refused:
            _run(
                session,
                clock,
                import_sirene,
                ImportKind.SIRENE,
                b"siren,denominationUniteLegale\n732829320,X\n",
            )
        assert refused.value.issues[0].line == 1
        assert "etatAdministratifUniteLegale" in refused.value.issues[0].message


def _announcements() -> list[Announcement]:
    day = date(2025, 11, 3)
    return [
        Announcement(
            "A202500000001", (ACTIVE,), "Jugement d'ouverture d'une procédure de sauvegarde", day, day
        ),
        Announcement(
            "A202500000002",
            (PERSON,),
            "Jugement d'ouverture d'une procédure de redressement judiciaire",
            date(2025, 10, 20),
            day,
        ),
        Announcement(
            "A202500000003", (PERSON,), "Jugement arrêtant le plan de redressement", date(2026, 1, 12), day
        ),
        Announcement(
            "A202500000004",
            (CEASED,),
            "Jugement d'ouverture de liquidation judiciaire",
            date(2025, 5, 2),
            day,
        ),
        Announcement(
            "A202500000005",
            (CEASED,),
            "Jugement de clôture pour insuffisance d'actif",
            date(2025, 12, 1),
            day,
        ),
        Announcement("A202500000006", (CEASED,), "Jugement d'extension de liquidation judiciaire", None, day),
        Announcement("A202500000007", (ACTIVE,), "", None, day, family="Créations"),
    ]


class TestBodacc:
    def test_proceedings_and_their_kinds(self, session: Session, clock: FrozenClock) -> None:
        outcome = _run(session, clock, import_bodacc, ImportKind.BODACC, bodacc_csv(_announcements()))
        assert outcome.created == 6 and outcome.counts == {"insolvency_proceedings": 6, "skipped": 1}
        rows = {p.announcement_id: p for p in session.execute(select(InsolvencyProceeding)).scalars()}
        assert {a: p.kind for a, p in rows.items()} == {
            "A202500000001": "sauvegarde",
            "A202500000002": "redressement",
            "A202500000003": "plan",
            "A202500000004": "liquidation",
            "A202500000005": "cloture",
            "A202500000006": "liquidation",
        }
        first = rows["A202500000001"]
        assert (first.siren, first.judgment_date, first.court) == (
            ACTIVE,
            date(2025, 11, 3),
            "TRIBUNAL DE COMMERCE DE PARIS",
        )
        assert rows["A202500000006"].judgment_date == date(2025, 11, 3)  # no date: the publication's

    def test_reimport_changes_nothing(self, session: Session, clock: FrozenClock) -> None:
        _run(session, clock, import_bodacc, ImportKind.BODACC, bodacc_csv(_announcements()))
        again = _run(session, clock, import_bodacc, ImportKind.BODACC, bodacc_csv(_announcements()))
        assert (again.created, again.updated, again.unchanged) == (0, 0, 6)
        assert session.execute(select(func.count()).select_from(InsolvencyProceeding)).scalar_one() == 6

    def test_bad_siren_refused_with_its_line(self, session: Session, clock: FrozenClock) -> None:
        bad = Announcement(
            "A202500000099", ("123456789",), "Jugement d'ouverture", date(2025, 1, 1), date(2025, 1, 2)
        )
        with pytest.raises(ImportRefused) as refused:
            _run(session, clock, import_bodacc, ImportKind.BODACC, bodacc_csv([*_announcements()[:2], bad]))
        assert [(i.line, i.field) for i in refused.value.issues] == [(4, "registre")]
        assert session.execute(select(func.count()).select_from(InsolvencyProceeding)).scalar_one() == 0

    def test_one_announcement_naming_two_companies(self, session: Session, clock: FrozenClock) -> None:
        day = date(2025, 3, 3)
        both = Announcement("A202500000100", (ACTIVE, PERSON), "Jugement de liquidation judiciaire", day, day)
        _run(session, clock, import_bodacc, ImportKind.BODACC, bodacc_csv([both]))
        keys = session.execute(
            select(InsolvencyProceeding.announcement_id).order_by(InsolvencyProceeding.siren)
        )
        assert sorted(keys.scalars()) == sorted([f"A202500000100:{ACTIVE}", f"A202500000100:{PERSON}"])

    def test_registry_status_for_eligibility(self, session: Session, clock: FrozenClock) -> None:
        _run(session, clock, import_sirene, ImportKind.SIRENE, sirene_csv(_units()))
        _run(session, clock, import_bodacc, ImportKind.BODACC, bodacc_csv(_announcements()))
        assert debtor_registry_status(session, ACTIVE) == (True, ProceedingKind.SAUVEGARDE)
        assert debtor_registry_status(session, PERSON) == (True, ProceedingKind.PLAN)
        assert debtor_registry_status(session, CEASED) == (False, ProceedingKind.CLOTURE)
        assert debtor_registry_status(session, f.siren()) == (None, None)


@pytest.mark.parametrize(
    ("nature", "kind"),
    [
        ("Jugement d'ouverture d'une procédure de sauvegarde accélérée", ProceedingKind.SAUVEGARDE),
        ("Jugement d'ouverture d'une procédure de redressement judiciaire", ProceedingKind.REDRESSEMENT),
        ("Jugement de conversion en liquidation judiciaire", ProceedingKind.LIQUIDATION),
        (
            "Jugement prononçant la résolution du plan de redressement et la liquidation judiciaire",
            "liquidation",
        ),
        ("Jugement arrêtant le plan de sauvegarde", ProceedingKind.PLAN),
        (
            "Jugement de clôture de la procédure de liquidation pour insuffisance d'actif",
            ProceedingKind.CLOTURE,
        ),
        ("Jugement mettant fin à la procédure de redressement judiciaire", ProceedingKind.CLOTURE),
        ("Avis de dépôt de l'état des créances", ProceedingKind.OTHER),
    ],
)
def test_kind_from_the_judgment_nature(nature: str, kind: str) -> None:
    assert proceeding_kind(nature) == kind
