"""The ledger: balances per account, the trial balance, and the reconciliation of the
ledger with the payment provider (back-office)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from escompte.access.principal import visible_company_ids
from escompte.api.deps import ClockDep, PrincipalDep, SessionDep
from escompte.api.problems import problem_responses
from escompte.api.routing import EscompteRoute
from escompte.errors import Forbidden
from escompte.financing import ledger, provider_report, rails
from escompte.financing.exceptions import PaymentsUnavailable
from escompte.ids import id_pattern
from escompte.models import Company
from escompte.schemas import ListResponse

router = APIRouter(tags=["ledger"], route_class=EscompteRoute)


class AccountBalance(BaseModel):
    object: Literal["ledger_account"] = "ledger_account"
    code: str
    company: str | None
    currency: str
    balance: int  # debit > 0


class TrialBalance(BaseModel):
    object: Literal["trial_balance"] = "trial_balance"
    totals: dict[str, int]
    balanced: bool
    unbalanced_transactions: list[str]
    accounts: list[AccountBalance]


def _admin(principal: Any) -> None:
    if not principal.is_admin:
        raise Forbidden("Only an admin key reads the platform's ledger.")


@router.get(
    "/v1/ledger/accounts",
    response_model=ListResponse[AccountBalance],
    summary="Ledger balances per account (debit positive): a company's own, or all (admin)",
)
def accounts(
    session: SessionDep,
    principal: PrincipalDep,
    company: Annotated[str | None, Query(pattern=id_pattern("cmp"))] = None,
) -> ListResponse[AccountBalance]:
    from sqlalchemy import select

    if principal.is_admin:
        rows = ledger.account_balances(session, company)
    else:
        visible = set(
            session.execute(select(Company.id).where(visible_company_ids(principal, Company.id))).scalars()
        )
        if company is not None:
            visible &= {company}
        rows = [r for r in ledger.account_balances(session) if r[1] in visible]
    data = [AccountBalance(code=c, company=k, currency=cur, balance=b) for c, k, cur, b in rows]
    return ListResponse(data=data, has_more=False)


@router.get(
    "/v1/ledger/trial-balance",
    response_model=TrialBalance,
    responses=problem_responses(403),
    summary="Every account's balance and the sum of all postings per currency (zero when balanced)",
)
def trial_balance(session: SessionDep, principal: PrincipalDep) -> TrialBalance:
    _admin(principal)
    totals = ledger.trial_balance(session)
    bad = ledger.unbalanced_transactions(session)
    rows = ledger.account_balances(session)
    return TrialBalance(
        totals=totals,
        balanced=not bad and all(v == 0 for v in totals.values()),
        unbalanced_transactions=bad[:100],
        accounts=[AccountBalance(code=c, company=k, currency=cur, balance=b) for c, k, cur, b in rows],
    )


@router.get(
    "/v1/ledger/provider-reconciliation",
    responses=problem_responses(403, 503),
    summary="Compare the ledger's cash at Stripe with Stripe's balance transactions (admin)",
)
def provider_reconciliation(
    request: Request, session: SessionDep, clock: ClockDep, principal: PrincipalDep
) -> dict[str, Any]:
    _admin(principal)
    try:
        rail = rails.from_settings(request.app.state.settings)
        return provider_report.reconcile(session, rail).as_dict()
    except rails.RailNotConfigured as exc:
        raise PaymentsUnavailable(exc.message) from None
    except rails.RailUnavailable as exc:
        raise PaymentsUnavailable(f"The payment provider did not answer ({exc.code}).") from None
