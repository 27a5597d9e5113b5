"""The ``escompte`` command line.

Every command honours ESCOMPTE_DATABASE_URL; without it, they share the embedded
PostgreSQL kept in ``--data-dir`` (default ESCOMPTE_DATA_DIR or ./.escompte).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from escompte.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from escompte.financing.stripe_fake import FakeStripe

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Escompte: invoice financing.")
keys_app = typer.Typer(no_args_is_help=True, help="Create, list and revoke API keys.")
db_app = typer.Typer(no_args_is_help=True, help="The embedded PostgreSQL.")
partners_app = typer.Typer(no_args_is_help=True, help="Partner platforms.")
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")
app.add_typer(partners_app, name="partners")

err = Console(stderr=True)

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="Folder of the embedded PostgreSQL (when ESCOMPTE_DATABASE_URL is unset)."
    ),
]


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


# the local fake Stripe's test-mode webhook secret (the demo only)
DEMO_WEBHOOK_SECRET = "whsec_test_escompte_demo"  # noqa: S105
DEMO_PLATFORM_IBAN = "FR7630006000011234567890189"


def _settings(data_dir: Path | None) -> Settings:
    try:
        settings = load_settings()
    except SettingsError as exc:
        raise _fail(str(exc)) from None
    if data_dir is not None:
        settings = settings.model_copy(update={"data_dir": data_dir})
    return settings


def _database_url(settings: Settings) -> str:
    from escompte.db.embedded import resolve_database_url

    try:
        url = resolve_database_url(settings.database_url, settings.data_dir)
    except Exception as exc:
        raise _fail(f"cannot reach or start PostgreSQL: {exc}") from None
    # Child processes (uvicorn workers) use the same server.
    os.environ["ESCOMPTE_DATABASE_URL"] = url
    return url


def _migrate(url: str) -> None:
    from escompte.db.migrate import upgrade

    try:
        upgrade(url)
    except Exception as exc:
        raise _fail(f"migration failed: {exc}") from None


def _session(url: str, settings: Settings):  # type: ignore[no-untyped-def]
    from escompte.db import make_engine, make_session_factory

    return make_session_factory(make_engine(url, pool_size=2))()


def _bootstrap_admin_key(url: str, settings: Settings) -> None:
    if not settings.admin_api_key:
        return
    from escompte.access.keys import ensure_key
    from escompte.clock import SystemClock
    from escompte.models import PrincipalKind

    with _session(url, settings) as session, session.begin():
        ensure_key(session, SystemClock(), settings.admin_api_key, PrincipalKind.ADMIN)


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _serve(settings: Settings, host: str, port: int, workers: int) -> None:
    import uvicorn

    if not _port_free(host, port):
        raise _fail(f"{host}:{port} is already in use; choose another with --port.")
    if workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        # /metrics then adds up the samples of every API process
        metrics_dir = settings.data_dir.resolve() / "metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    uvicorn.run(
        "escompte.api.app:serve_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        log_level=settings.log_level.lower(),
    )


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="API processes.")] = 2,
    data_dir: DataDir = None,
) -> None:
    """Serve the API (migrations must be applied: `escompte migrate`)."""
    settings = _settings(data_dir)
    url = _database_url(settings)
    _bootstrap_admin_key(url, settings)
    _serve(settings, host, port, workers)


@app.command()
def worker(data_dir: DataDir = None) -> None:
    """Run queued jobs and periodic sweeps. Start as many as you like."""
    from escompte.clock import SystemClock
    from escompte.db import make_engine, make_session_factory
    from escompte.jobs.worker import run_worker
    from escompte.logging import configure

    settings = _settings(data_dir)
    url = _database_url(settings)
    configure(settings.log_level, settings.log_format)
    factory = make_session_factory(make_engine(url, pool_size=2))
    run_worker(factory, SystemClock(), settings)


@app.command()
def migrate(
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
    downgrade: Annotated[bool, typer.Option(help="Downgrade to --revision instead.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Apply the database migrations."""
    from escompte.db import migrate as migrations

    settings = _settings(data_dir)
    url = _database_url(settings)
    try:
        if downgrade:
            migrations.downgrade(url, revision)
        else:
            migrations.upgrade(url, revision)
    except Exception as exc:
        raise _fail(f"migration failed: {exc}") from None
    err.print(f"[green]database at {'downgraded to' if downgrade else 'upgraded to'} {revision}[/]")


@app.command()
def demo(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64)] = 2,
    serve_api: Annotated[bool, typer.Option("--serve/--no-serve", help="Serve after seeding.")] = True,
    data_dir: DataDir = None,
) -> None:
    """Migrate, seed the demo data (once), print keys, then serve the API."""
    from escompte import demo as demo_data
    from escompte.clock import SystemClock

    settings = _settings(data_dir)
    base = f"http://{host}:{port}"
    fake = None
    if not settings.stripe_api_key:
        # No Stripe account configured: payments run against the local fake Stripe, in
        # this process, which posts its signed webhooks to the demo API.
        from escompte.financing.stripe_fake import FakeStripe

        fake = FakeStripe(
            api_key="sk_test_escompte_demo",
            webhook_url=f"{base}/v1/webhooks/stripe",
            webhook_secret=DEMO_WEBHOOK_SECRET,
            auto_deliver=True,
        ).start()
        os.environ.update(
            ESCOMPTE_STRIPE_API_KEY=fake.api_key,
            ESCOMPTE_STRIPE_API_BASE=fake.base_url,
            ESCOMPTE_STRIPE_WEBHOOK_SECRET=DEMO_WEBHOOK_SECRET,
        )
        # the demo platform's own bank account (supplier transfers leave it)
        os.environ.setdefault("ESCOMPTE_PLATFORM_IBAN", DEMO_PLATFORM_IBAN)
        settings = _settings(data_dir)
    url = _database_url(settings)
    _migrate(url)
    clock = SystemClock()
    financed = ""
    stripe_state = _demo_stripe_state(settings)
    with _session(url, settings) as session, session.begin():
        if demo_data.already_seeded(session):
            if fake is not None and not fake.load(stripe_state):
                err.print(
                    "[yellow]the fake Stripe starts empty: the advances and payment set-ups made "
                    "before cannot move money through it (a new --data-dir gives a fresh demo)[/]"
                )
        else:
            demo_data.seed(session, clock)
            err.print("[green]demo data seeded[/]")
            if fake is not None:
                from escompte import demo_financing
                from escompte.financing import rails

                advances = demo_financing.seed(
                    session,
                    clock,
                    rails.from_settings(settings),
                    fake,
                    settings.sepa_debit_cap_cents,
                    settings,
                )
                if advances:  # the first one was repaid early: its statement tells the whole story
                    financed = f"  An advance's statement: {base}/v1/advances/{advances[0]}/statement\n"
        keys = demo_data.demo_keys(session, clock)
    if fake is not None:
        fake.save(stripe_state)
    out = Console()
    out.print(
        f"""
[bold]Escompte demo[/]
  API docs (interactive):  {base}/docs
  OpenAPI spec:            {base}/openapi.json
  Admin key:               {keys.admin}
  Partner key:             {keys.partner}
  Company key ({keys.company_id}): {keys.company}

  Payments:                {"local fake Stripe at " + fake.base_url if fake else settings.stripe_api_base}
{financed}
  Try:  curl -H "Authorization: Bearer {keys.admin}" {base}/v1/companies
        curl -H "Authorization: Bearer {keys.admin}" {base}/v1/advances
""",
        soft_wrap=True,
    )
    if fake is not None:
        _settle_in_background(fake, stripe_state)
    if serve_api:
        try:
            _serve(settings, host, port, workers)
        finally:
            if fake is not None:
                fake.save(stripe_state)


def _demo_stripe_state(settings: Settings) -> Path:
    """Where the demo keeps its fake Stripe's state between runs: one file per database
    (the embedded one of the data folder, or the configured URL)."""
    import hashlib

    database = hashlib.sha256((settings.database_url or "embedded").encode()).hexdigest()[:12]
    return settings.data_dir / f"demo-stripe-{database}.pickle"


def _settle_in_background(fake: FakeStripe, state: Path) -> None:
    """The demo's bank: every few seconds the fake Stripe pays the payouts and collects
    the debits in flight (their webhooks follow), so an advance accepted through the API
    becomes active, and a repayment repays, within seconds. Its state is saved each
    time, so that a demo stopped any way restarts with the Stripe objects its database
    names."""
    import threading
    import time

    def loop() -> None:
        while True:
            time.sleep(5)
            try:
                fake.settle_payouts()
                fake.settle_payment_intents()
                fake.save(state)
            except Exception as exc:  # the demo server must not die with its bank
                err.print(f"[yellow]fake Stripe settlement failed: {exc}[/]")

    threading.Thread(target=loop, name="demo-bank", daemon=True).start()


@keys_app.command("create")
def keys_create(
    kind: Annotated[str, typer.Option(help="admin, partner or company.")],
    company: Annotated[str | None, typer.Option(help="Company id (company keys).")] = None,
    partner: Annotated[str | None, typer.Option(help="Partner id (partner keys).")] = None,
    mode: Annotated[str | None, typer.Option(help="test or live (default: ESCOMPTE_KEY_MODE, test).")] = None,
    description: Annotated[str | None, typer.Option()] = None,
    data_dir: DataDir = None,
) -> None:
    """Create a key and print only the key on stdout (shown once)."""
    from escompte.access.keys import create_key
    from escompte.clock import SystemClock
    from escompte.errors import DomainError
    from escompte.models import KeyMode, PrincipalKind

    try:
        principal_kind = PrincipalKind(kind)
    except ValueError:
        raise _fail("--kind must be admin, partner or company") from None
    if mode not in (None, "test", "live"):
        raise _fail("--mode must be test or live")
    settings = _settings(data_dir)
    url = _database_url(settings)
    try:
        with _session(url, settings) as session, session.begin():
            created = create_key(
                session,
                SystemClock(),
                kind=principal_kind,
                mode=KeyMode(mode or settings.key_mode),
                partner_id=partner,
                company_id=company,
                description=description,
            )
    except DomainError as exc:
        raise _fail(str(exc)) from None
    sys.stdout.write(created.secret + "\n")
    err.print(f"created {created.key.id} ({principal_kind}); store the key now, it is not shown again")


@keys_app.command("list")
def keys_list(data_dir: DataDir = None) -> None:
    """List keys (never their secrets), newest first."""
    from rich.table import Table
    from sqlalchemy import select

    from escompte.models import ApiKey

    settings = _settings(data_dir)
    url = _database_url(settings)
    columns = ("id", "kind", "mode", "prefix", "owner", "created", "revoked")
    rows = []
    with _session(url, settings) as session:
        for k in session.execute(select(ApiKey).order_by(ApiKey.id.desc()).limit(1000)).scalars():
            rows.append(
                (
                    k.id,
                    str(k.kind),
                    str(k.mode),
                    k.display_prefix + "…",
                    k.company_id or k.partner_id or "",
                    f"{k.created_at:%Y-%m-%d %H:%M}",
                    f"{k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "",
                )
            )
    if not sys.stdout.isatty():  # scripts get tab-separated lines
        for row in (columns, *rows):
            sys.stdout.write("\t".join(row) + "\n")
        return
    table = Table(*columns)
    for row in rows:
        table.add_row(*row)
    Console().print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str, data_dir: DataDir = None) -> None:
    """Revoke a key at once."""
    from escompte.access.keys import revoke_key
    from escompte.clock import SystemClock
    from escompte.errors import DomainError

    settings = _settings(data_dir)
    url = _database_url(settings)
    try:
        with _session(url, settings) as session, session.begin():
            key = revoke_key(session, SystemClock(), None, key_id)
    except DomainError as exc:
        raise _fail(str(exc)) from None
    err.print(f"revoked {key.id} at {key.revoked_at:%Y-%m-%d %H:%M:%S} UTC")


@partners_app.command("create")
def partners_create(name: str, data_dir: DataDir = None) -> None:
    """Register a partner platform; prints its id."""
    from escompte.access.keys import create_partner
    from escompte.clock import SystemClock

    if not name.strip() or len(name) > 200:
        raise _fail("the name must be 1 to 200 characters")
    settings = _settings(data_dir)
    url = _database_url(settings)
    with _session(url, settings) as session, session.begin():
        partner = create_partner(session, SystemClock(), name.strip())
    sys.stdout.write(partner.id + "\n")


@app.command("import")
def import_file(
    path: Annotated[Path, typer.Argument(help="The file to import.")],
    company: Annotated[str | None, typer.Option(help="Company id (not for sirene/bodacc).")] = None,
    kind: Annotated[str | None, typer.Option(help="File type; detected when omitted.")] = None,
    options: Annotated[str | None, typer.Option(help="JSON options, e.g. a bank CSV mapping.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Import a file (FEC, Factur-X, CII, UBL, camt.053, OFX, CSV, lifecycle, SIRENE, BODACC)."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from escompte.clock import SystemClock
    from escompte.connectors import service
    from escompte.errors import DomainError
    from escompte.models import ImportKind, ImportStatus

    if not path.is_file():
        raise _fail(f"{path}: no such file")
    try:
        import_kind = ImportKind(kind) if kind else None
    except ValueError:
        raise _fail(f"--kind must be one of: {', '.join(k.value for k in ImportKind)}") from None
    try:
        parsed_options = json.loads(options) if options else {}
    except ValueError:
        raise _fail("--options must be a JSON object") from None
    if not isinstance(parsed_options, dict):
        raise _fail("--options must be a JSON object")
    settings = _settings(data_dir)
    url = _database_url(settings)
    clock = SystemClock()
    size = path.stat().st_size
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
    try:
        with (
            _session(url, settings) as session,
            session.begin(),
            path.open("rb") as stream,
            Progress(*columns, console=err) as bar,
        ):
            stored = bar.add_task("storing", total=size)
            data_import = service.receive(
                session,
                clock,
                None,
                company_id=company,
                filename=path.name,
                stream=stream,
                kind=import_kind,
                options=parsed_options,
            )
            bar.update(stored, completed=size)
            running = bar.add_task(f"importing {data_import.kind.value}", total=size)
            service.process(
                session,
                clock,
                data_import,
                progress=lambda done, total: bar.update(running, completed=done, total=total),
            )
            bar.update(running, completed=size)
            if data_import.status is ImportStatus.FAILED:
                raise service.rejection(data_import)  # rolls the whole import back
    except DomainError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        for e in exc.errors[:20]:
            where = f"line {e.line}" if e.line else (e.path or e.field)
            err.print(f"  {where}: {e.message}")
        raise typer.Exit(1 if exc.code == "file_rejected" else 2) from None
    out = Console()
    note = f" (same file as {data_import.duplicate_of})" if data_import.duplicate_of else ""
    by_type = ", ".join(f"{k}: {v}" for k, v in (data_import.counts or {}).items())
    out.print(
        f"[green]{data_import.id}: {data_import.kind.value} imported{note}[/] — created "
        f"{data_import.created_count}, updated {data_import.updated_count}, unchanged "
        f"{data_import.unchanged_count}" + (f" ({by_type})" if by_type else "")
    )


@db_app.command("stop")
def db_stop(data_dir: DataDir = None) -> None:
    """Stop the embedded PostgreSQL of --data-dir (also after a crash left stale pids)."""
    from escompte.db.embedded import stop

    settings = _settings(data_dir)
    stopped = stop(settings.data_dir)
    err.print("stopped" if stopped else "not running")


@app.command()
def openapi(
    output: Annotated[Path, typer.Option(help="Where to write the spec.")] = Path("openapi/openapi.json"),
) -> None:
    """Write the OpenAPI spec the API serves (no database needed)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render_openapi())
    err.print(f"wrote {output}")


def render_openapi() -> str:
    from escompte.api.app import create_app
    from escompte.db import make_engine

    settings = Settings(database_url="postgresql+psycopg://unused@localhost/unused")
    spec = create_app(
        settings, engine=make_engine(settings.database_url or ""), configure_logs=False
    ).openapi()
    return json.dumps(spec, indent=2, ensure_ascii=False, sort_keys=False) + "\n"


if __name__ == "__main__":
    app()
