"""Financing's periodic work, triggered by the scheduler, claimed with SKIP LOCKED:

- ``financing_due``: accrue fees and late interest, mark matured advances overdue, debit
  the SME two business days before maturity or as soon as its debtor paid the invoice;
- ``financing_notices``: email the SME a week before its advance is debited;
- ``financing_recover``: finish disbursements a crash or an unavailable provider left
  half done (same idempotency keys: never a second payout).
"""

from __future__ import annotations

from datetime import timedelta

import structlog
from sqlalchemy.orm import Session

from escompte import mail
from escompte.clock import Clock
from escompte.financing import pricing, rails, service, states
from escompte.models import Company
from escompte.money import format_cents
from escompte.settings import Settings

log = structlog.get_logger("escompte.financing")
RECOVER_AFTER = timedelta(seconds=60)


def _rail(settings: Settings) -> rails.StripeRail | None:
    try:
        return rails.from_settings(settings)
    except rails.RailNotConfigured:
        return None


def due(session: Session, clock: Clock, settings: Settings) -> int:
    counts = service.run_due(session, clock, _rail(settings), settings.sepa_debit_cap_cents)
    return sum(counts.values())


def recover(session: Session, clock: Clock, settings: Settings) -> int:
    rail = _rail(settings)
    if rail is None:
        return 0
    return service.recover_disbursements(session, clock, rail, RECOVER_AFTER)


def notices(session: Session, clock: Clock, settings: Settings) -> int:
    sent = 0
    for advance in service.due_for_notice(session, clock):
        company = session.get(Company, advance.company_id)
        if company is None:
            continue
        service.accrue(session, clock, advance)
        o = service.owed(session, advance)
        fee = pricing.fee_cents(advance.principal_cents, advance.daily_rate, advance.duration_days)
        total = advance.principal_cents + max(fee, o.fees_cents) + o.late_interest_cents
        day = service.debit_day(advance.maturity_date)
        body = (
            f"Bonjour,\n\nVotre avance {advance.id} arrive à échéance le {advance.maturity_date:%d/%m/%Y}. "
            f"Nous prélèverons {format_cents(total)} sur votre compte (mandat SEPA) à partir du "
            f"{day:%d/%m/%Y}, sauf remboursement anticipé.\n\n"
            f"Hello,\n\nYour advance {advance.id} matures on {advance.maturity_date.isoformat()}. "
            f"We will debit {format_cents(total)} from your account (SEPA mandate) from "
            f"{day.isoformat()}, unless you repay earlier.\n\n— Escompte\n"
        )
        try:
            mail.send(settings.smtp_url, company.contact_email, f"Échéance / maturity {advance.id}", body)
        except mail.MailNotConfigured:
            log.info("notice_not_sent", advance=advance.id, why="no SMTP configured")
        except OSError as exc:
            log.warning("notice_failed", advance=advance.id, error=str(exc))
            continue  # tried again at the next run
        advance.notice_sent_at = clock.now()
        states.record(
            session,
            "advance.maturity_notice",
            advance,
            clock.now(),
            {"to": company.contact_email, "amount": total},
        )
        sent += 1
    return sent
