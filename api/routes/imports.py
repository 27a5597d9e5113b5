"""Data imports: FEC, e-invoices, bank statements, lifecycle statuses, registries."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Path, Query, Request, UploadFile
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from escompte.api.deps import ClockDep, PageDep, PrincipalDep, SessionDep
from escompte.api.problems import problem_responses
from escompte.api.routing import EscompteRoute
from escompte.clock import Clock
from escompte.connectors import service, tasks
from escompte.connectors.schemas import ImportOut, import_out
from escompte.errors import FieldError, ValidationFailed
from escompte.ids import id_pattern
from escompte.jobs import queue
from escompte.models import REGISTRY_KINDS, ImportKind, ImportStatus
from escompte.schemas import ListResponse
from escompte.settings import Settings

router = APIRouter(tags=["imports"], route_class=EscompteRoute)

CompanyId = Annotated[str, Path(pattern=id_pattern("cmp"))]
ImportId = Annotated[str, Path(pattern=id_pattern("imp"))]

KIND_HELP = (
    "fec, facturx, cii, ubl, camt053, ofx, bank_csv (needs options.mapping), lifecycle "
    "(CDAR XML or JSON); detected from the content when omitted."
)
OPTIONS_HELP = (
    'A JSON object: the column mapping of a bank CSV, {"mapping": {...}}; for a FEC whose file '
    "name is not the legal <SIREN>FEC<YYYYMMDD>, its fiscal year's closing date, "
    '{"fiscal_year_end": "2026-06-30"}.'
)

_RESPONSES: dict[int | str, dict[str, Any]] = {
    201: {"description": "Processed now (small file): see status, counts and errors."},
    202: {"description": "Queued for a worker (large file): poll GET /v1/imports/{id}.", "model": ImportOut},
    **problem_responses(403, 404, 413),
}


def _options(raw: str | None) -> dict[str, Any]:
    if raw is None or not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        raise ValidationFailed(
            "options must be a JSON object.", [FieldError("options", "not valid JSON")]
        ) from None
    if not isinstance(value, dict):
        raise ValidationFailed("options must be a JSON object.", [FieldError("options", "not a JSON object")])
    return value


def _import(
    session: Any,
    clock: Clock,
    settings: Settings,
    principal: Any,
    company_id: str | None,
    upload: UploadFile,
    kind: ImportKind | None,
    options: dict[str, Any],
) -> JSONResponse:
    data_import = service.receive(
        session,
        clock,
        principal,
        company_id=company_id,
        filename=upload.filename or "upload",
        stream=upload.file,
        kind=kind,
        options=options,
        max_bytes=settings.max_upload_bytes,
    )
    if data_import.status is ImportStatus.QUEUED:
        if data_import.size_bytes <= service.INLINE_MAX_BYTES:
            processed = service.process(session, clock, data_import)
            if processed.status is ImportStatus.FAILED:
                # processed now: refuse the call itself; nothing (not even the import) is kept
                raise service.rejection(data_import)
        else:
            queue.enqueue(session, clock, tasks.RUN_IMPORT, {"import_id": data_import.id})
            return JSONResponse(import_out(data_import).model_dump(mode="json"), status_code=202)
    return JSONResponse(import_out(data_import).model_dump(mode="json"), status_code=201)


@router.post(
    "/v1/companies/{company_id}/imports",
    status_code=201,
    response_model=ImportOut,
    responses=_RESPONSES,
    summary="Import a file of the company's data",
)
async def create_import(
    request: Request,
    company_id: CompanyId,
    session: SessionDep,
    clock: ClockDep,
    principal: PrincipalDep,
    file: Annotated[
        UploadFile, File(description="The file: FEC, Factur-X PDF, CII/UBL XML, camt.053, OFX, CSV, CDAR.")
    ],
    kind: Annotated[ImportKind | None, Form(description=KIND_HELP)] = None,
    options: Annotated[str | None, Form(max_length=10_000, description=OPTIONS_HELP)] = None,
) -> JSONResponse:
    if kind in REGISTRY_KINDS:
        raise ValidationFailed(
            "Registry extracts are imported at /v1/registries/imports.",
            [FieldError("kind", "not a company file")],
        )
    return await run_in_threadpool(
        _import,
        session,
        clock,
        request.app.state.settings,
        principal,
        company_id,
        file,
        kind,
        _options(options),
    )


@router.post(
    "/v1/registries/imports",
    status_code=201,
    response_model=ImportOut,
    responses=_RESPONSES,
    summary="Import a SIRENE or BODACC extract (admin)",
)
async def create_registry_import(
    request: Request,
    session: SessionDep,
    clock: ClockDep,
    principal: PrincipalDep,
    file: Annotated[UploadFile, File(description="A SIRENE (StockUniteLegale CSV) or BODACC extract.")],
    kind: Annotated[ImportKind | None, Form(description="sirene or bodacc; detected when omitted.")] = None,
) -> JSONResponse:
    if kind is not None and kind not in REGISTRY_KINDS:
        raise ValidationFailed(
            "Only sirene and bodacc extracts are imported here.",
            [FieldError("kind", "must be sirene or bodacc")],
        )
    return await run_in_threadpool(
        _import, session, clock, request.app.state.settings, principal, None, file, kind, {}
    )


@router.get(
    "/v1/imports/{import_id}",
    response_model=ImportOut,
    responses=problem_responses(404),
    summary="Get an import: status, counts, errors",
)
def get_import(import_id: ImportId, session: SessionDep, principal: PrincipalDep) -> ImportOut:
    return import_out(service.get_import(session, principal, import_id))


@router.get("/v1/imports", response_model=ListResponse[ImportOut], summary="List imports")
def list_imports(
    session: SessionDep,
    principal: PrincipalDep,
    page: PageDep,
    company: Annotated[str | None, Query(pattern=id_pattern("cmp"))] = None,
    kind: ImportKind | None = None,
    status: ImportStatus | None = None,
) -> ListResponse[ImportOut]:
    rows = service.list_imports(
        session,
        principal,
        company_id=company,
        kind=kind,
        status=status,
        limit=page.limit + 1,
        starting_after=page.starting_after,
    )
    return ListResponse(data=[import_out(i) for i in rows[: page.limit]], has_more=len(rows) > page.limit)
