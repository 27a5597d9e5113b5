"""The import pipeline: receive, store, detect, run all-or-nothing, record the outcome."""

from __future__ import annotations

import io
import os

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from escompte.clock import FrozenClock
from escompte.connectors import service, tasks
from escompte.connectors.base import ImportContext, ImportOutcome
from escompte.errors import NotFound, ValidationFailed
from escompte.ids import new_id
from escompte.models import Company, Debtor, ImportKind, ImportStatus, Job
from tests import factories as f
from tests.api.conftest import World

FEC_HEAD = b"JournalCode\tJournalLib\tEcritureNum\tEcritureDate\tCompteNum\n"


def _debtors(session: Session) -> int:
    return session.execute(select(func.count()).select_from(Debtor)).scalar_one()


def _writing_handler(lines_with_errors: tuple[int, ...] = ()):  # type: ignore[no-untyped-def]
    """A handler that writes one debtor per line of the file, and refuses given lines."""

    def handler(ctx: ImportContext) -> ImportOutcome:
        assert ctx.company is not None
        created = 0
        for number, line in enumerate(ctx.open_stream().read().splitlines(), start=1):
            if number in lines_with_errors:
                ctx.issues.add(f"line {number} is wrong", line=number, field="Debit")
            ctx.session.add(
                Debtor(
                    id=new_id("dbt"),
                    company_id=ctx.company.id,
                    legal_name=line.decode()[:50],
                    aux_account_num=f"411{number:05d}",
                    payment_terms_days=30,
                    created_at=ctx.clock.now(),
                )
            )
            created += 1
        ctx.session.flush()
        return ImportOutcome(created=created, counts={"debtors": created})

    return handler


@pytest.fixture
def company(session: Session, clock: FrozenClock) -> Company:
    c = f.company(session, clock)
    session.commit()
    return c


class TestProcess:
    def test_success_records_counts(self, session: Session, clock: FrozenClock, company: Company) -> None:
        imp = service.receive(
            session,
            clock,
            None,
            company_id=company.id,
            filename="a.txt",
            stream=io.BytesIO(FEC_HEAD + b"x\ny\n"),
        )
        assert imp.kind is ImportKind.FEC and imp.status is ImportStatus.QUEUED
        service.process(session, clock, imp, handler=_writing_handler())
        assert imp.status is ImportStatus.SUCCEEDED
        assert (imp.created_count, imp.counts) == (3, {"debtors": 3})
        assert _debtors(session) == 3

    def test_refusal_keeps_nothing_and_lists_every_error(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        imp = service.receive(
            session,
            clock,
            None,
            company_id=company.id,
            filename="a.txt",
            stream=io.BytesIO(FEC_HEAD + b"x\ny\nz\n"),
        )
        service.process(session, clock, imp, handler=_writing_handler((2, 4)))
        assert imp.status is ImportStatus.FAILED
        assert imp.error_count == 2
        assert [e["line"] for e in imp.errors] == [2, 4]
        assert imp.created_count == 0
        assert _debtors(session) == 0

    def test_crash_is_a_readable_failure(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        def crash(ctx: ImportContext) -> ImportOutcome:
            ctx.session.add(
                Debtor(
                    id=new_id("dbt"),
                    company_id=company.id,
                    legal_name="x",
                    aux_account_num="411",
                    payment_terms_days=30,
                    created_at=clock.now(),
                )
            )
            ctx.session.flush()
            raise KeyError("surprise")

        imp = service.receive(
            session, clock, None, company_id=company.id, filename="a.txt", stream=io.BytesIO(FEC_HEAD)
        )
        service.process(session, clock, imp, handler=crash)
        assert imp.status is ImportStatus.FAILED
        assert "could not be read as fec" in imp.errors[0]["message"]
        assert _debtors(session) == 0

    def test_same_file_twice_is_a_duplicate(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        data = FEC_HEAD + b"x\n"
        first = service.receive(
            session, clock, None, company_id=company.id, filename="a", stream=io.BytesIO(data)
        )
        service.process(session, clock, first, handler=_writing_handler())
        again = service.receive(
            session, clock, None, company_id=company.id, filename="b", stream=io.BytesIO(data)
        )
        assert again.status is ImportStatus.SUCCEEDED
        assert again.duplicate_of == first.id
        assert (again.created_count, again.unchanged_count) == (0, 2)
        assert _debtors(session) == 2

    def test_stream_reads_back_large_files_exactly(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        data = FEC_HEAD + os.urandom(3 * service.CHUNK_BYTES + 12345)
        imp = service.receive(
            session, clock, None, company_id=company.id, filename="big", stream=io.BytesIO(data)
        )
        assert imp.size_bytes == len(data)
        stream = service.open_stored(session, imp.id)
        assert stream.read(10) == data[:10]
        assert stream.read() == data[10:]


class TestReceiveRefusals:
    @pytest.mark.parametrize(
        ("content", "kind", "field"),
        [
            (b"", None, "file"),
            (b"hello world", None, "kind"),
            (b"%PDF-1.7 ...", ImportKind.FEC, "kind"),
            (FEC_HEAD, ImportKind.SIRENE, "kind"),
        ],
    )
    def test_refused_before_anything_is_stored(
        self,
        session: Session,
        clock: FrozenClock,
        company: Company,
        content: bytes,
        kind: ImportKind | None,
        field: str,
    ) -> None:
        with pytest.raises(ValidationFailed) as exc:
            service.receive(
                session,
                clock,
                None,
                company_id=company.id,
                filename="f",
                stream=io.BytesIO(content),
                kind=kind,
            )
        assert exc.value.errors[0].field == field

    def test_unknown_company(self, session: Session, clock: FrozenClock) -> None:
        with pytest.raises(NotFound):
            service.receive(
                session,
                clock,
                None,
                company_id="cmp_00000000000000000000000000",
                filename="f",
                stream=io.BytesIO(FEC_HEAD),
            )

    def test_too_large(self, session: Session, clock: FrozenClock, company: Company) -> None:
        with pytest.raises(ValidationFailed, match="larger than"):
            service.receive(
                session,
                clock,
                None,
                company_id=company.id,
                filename="f",
                stream=io.BytesIO(FEC_HEAD + b"x" * 3_000_000),
                max_bytes=2 * 1024 * 1024,
            )


class TestImportRoutes:
    def test_another_tenants_company_and_import_are_404(
        self, client: TestClient, session: Session, clock: FrozenClock, world: World
    ) -> None:
        files = {"file": ("a.txt", FEC_HEAD, "text/plain")}
        r = client.post(f"/v1/companies/{world.b.company.id}/imports", files=files, headers=world.a.headers)
        assert r.status_code == 404
        imp = service.receive(
            session, clock, None, company_id=world.b.company.id, filename="b", stream=io.BytesIO(FEC_HEAD)
        )
        session.commit()
        assert client.get(f"/v1/imports/{imp.id}", headers=world.a.headers).status_code == 404
        assert client.get(f"/v1/imports/{imp.id}", headers=world.b.headers).status_code == 200
        listed = client.get("/v1/imports", headers=world.a.headers).json()["data"]
        assert imp.id not in [i["id"] for i in listed]

    def test_registry_imports_are_for_admins(self, client: TestClient, world: World) -> None:
        files = {"file": ("s.csv", b"siren,etatAdministratifUniteLegale\n", "text/csv")}
        r = client.post("/v1/registries/imports", files=files, headers=world.a.headers)
        assert r.status_code == 403

    def test_undetectable_file_is_422_naming_kind(self, client: TestClient, world: World) -> None:
        files = {"file": ("x.bin", b"\x00\x01 nothing", "application/octet-stream")}
        r = client.post(f"/v1/companies/{world.a.company.id}/imports", files=files, headers=world.a.headers)
        assert r.status_code == 422
        assert r.json()["errors"][0]["field"] == "kind"

    def test_bad_options_are_422(self, client: TestClient, world: World) -> None:
        files = {"file": ("a.txt", FEC_HEAD, "text/plain")}
        r = client.post(
            f"/v1/companies/{world.a.company.id}/imports",
            files=files,
            data={"options": "[1,2"},
            headers=world.a.headers,
        )
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "options"

    def test_large_file_is_queued_then_run_by_a_worker(
        self, client: TestClient, session: Session, clock: FrozenClock, world: World
    ) -> None:
        big = FEC_HEAD + b"x" * (service.INLINE_MAX_BYTES + 10)
        files = {"file": ("big.txt", big, "text/plain")}
        r = client.post(f"/v1/companies/{world.a.company.id}/imports", files=files, headers=world.a.headers)
        assert r.status_code == 202, r.text
        assert r.json()["status"] == "queued"
        job = session.execute(select(Job).where(Job.kind == tasks.RUN_IMPORT)).scalar_one()
        assert job.payload == {"import_id": r.json()["id"]}

    def test_multipart_replay_with_idempotency_key(
        self, client: TestClient, world: World, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from escompte.connectors import registry

        monkeypatch.setitem(
            registry.HANDLERS, ImportKind.FEC, "tests.connectors.test_imports:writing_handler"
        )
        headers = {**world.a.headers, "Idempotency-Key": "upload-1"}
        files = {"file": ("x.bin", b"\x00 undetectable", "application/octet-stream")}
        data = {"kind": "sirene"}
        first = client.post(
            f"/v1/companies/{world.a.company.id}/imports", files=files, data=data, headers=headers
        )
        assert first.status_code == 422  # refused: nothing kept, the key is free again
        files = {"file": ("a.txt", FEC_HEAD, "text/plain")}
        one = client.post(f"/v1/companies/{world.a.company.id}/imports", files=files, headers=headers)
        two = client.post(f"/v1/companies/{world.a.company.id}/imports", files=files, headers=headers)
        assert one.status_code in (201, 202)
        assert two.content == one.content
        assert two.headers["idempotent-replayed"] == "true"


class TestRejectedFiles:
    def test_inline_refusal_is_a_422_problem_and_keeps_nothing(
        self, client: TestClient, session: Session, world: World, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from escompte.connectors import registry

        monkeypatch.setitem(
            registry.HANDLERS, ImportKind.FEC, "tests.connectors.test_imports:refusing_handler"
        )
        before = _debtors(session)
        files = {"file": ("a.txt", FEC_HEAD + b"x\ny\n", "text/plain")}
        r = client.post(f"/v1/companies/{world.a.company.id}/imports", files=files, headers=world.a.headers)
        assert r.status_code == 422, r.text
        problem = r.json()
        assert problem["type"] == "urn:escompte:problem:file_rejected"
        assert problem["errors"][0] == {
            "field": "Debit",
            "message": "line 2 is wrong",
            "code": "invalid_content",
            "line": 2,
        }
        assert _debtors(session) == before
        assert client.get("/v1/imports", headers=world.a.headers).json()["data"] == []

    def test_oversized_upload_is_413_before_reading(
        self, client: TestClient, app: object, world: World
    ) -> None:
        app.state.settings = app.state.settings.model_copy(update={"max_upload_bytes": 1024 * 1024})  # type: ignore[attr-defined]
        files = {"file": ("big.txt", FEC_HEAD + b"x" * (1024 * 1024 + 1), "text/plain")}
        r = client.post(f"/v1/companies/{world.a.company.id}/imports", files=files, headers=world.a.headers)
        assert r.status_code == 413
        assert r.headers["content-type"] == "application/problem+json"


def refusing_handler(ctx: ImportContext) -> ImportOutcome:
    return _writing_handler((2,))(ctx)  # type: ignore[no-any-return]


def writing_handler(ctx: ImportContext) -> ImportOutcome:
    return _writing_handler()(ctx)  # type: ignore[no-any-return]
