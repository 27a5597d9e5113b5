"""The rules, the score, the limits and the wording, on facts alone (no database)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from escompte.eligibility import limits, messages, rules
from escompte.eligibility.decision import CHECK_CODES, GATES, Outcome, evaluate
from escompte.eligibility.facts import BankFigures, Facts, invoice_fingerprint, normalised_number
from escompte.eligibility.policy import PolicySettings, merged
from escompte.eligibility.scoring import FEATURE_UNITS, score

TODAY = date(2026, 3, 2)
POLICY = PolicySettings()


def healthy(**changes: Any) -> Facts:
    """An invoice every check accepts: 12,000 € due in 45 days, on an identified, active,
    well-paying customer of a verified seller with a healthy bank account."""
    bank = BankFigures(
        connected=True,
        window_days=90,
        accounts=1,
        transactions=200,
        last_booking_date=TODAY,
        inflow_cents=20_000_000,
        outflow_cents=16_000_000,
        weeks_with_inflow=13,
        weeks_in_window=13,
        incidents=0,
        days_overdrawn=0,
        balance_start_cents=4_000_000,
        balance_end_cents=8_000_000,
    )
    base = Facts(
        as_of_date=TODAY,
        policy_version=1,
        invoice_id="inv_1",
        company_id="cmp_1",
        debtor_id="dbt_1",
        kind="receivable",
        document_type="invoice",
        status="open",
        number="F-2026-001",
        issue_date=TODAY - timedelta(days=5),
        due_date=TODAY + timedelta(days=45),
        due_date_estimated=False,
        amount_cents=1_200_000,
        amount_paid_cents=0,
        currency="EUR",
        invoice_fingerprint=invoice_fingerprint(
            "732829320", "F-2026-001", 1_200_000, TODAY - timedelta(days=5)
        ),
        lifecycle_code=None,
        lifecycle_amount_cents=None,
        buyer_approved=False,
        seller_siren="303265045",
        seller_in_registry=True,
        seller_active=True,
        seller_ceased_on=None,
        seller_proceeding=None,
        seller_proceeding_date=None,
        debtor_siren="732829320",
        debtor_name="Grands Magasins SA",
        debtor_in_registry=True,
        debtor_active=True,
        debtor_legal_form="5710",
        debtor_proceeding=None,
        debtor_proceeding_date=None,
        related_party=None,
        behaviour_paid_count=12,
        behaviour_avg_days_late=4,
        behaviour_share_paid_late_bps=2_500,
        behaviour_unpaid_overdue_count=0,
        behaviour_unpaid_overdue_cents=0,
        books_connected=False,
        books_as_of=None,
        books_lines=0,
        books_debit_cents=0,
        bank=bank,
        financed_here=0,
        financed_elsewhere=0,
        debtor_outstanding_cents=0,
        seller_outstanding_cents=0,
        seller_debtor_outstanding_cents=0,
        data_as_of=datetime(2026, 3, 2, 8, 0, tzinfo=UTC),
    )
    return dataclasses.replace(base, **changes)


def check(outcome: Outcome, code: str) -> rules.Check:
    return next(c for c in outcome.checks if c.code == code)


def texts(c: rules.Check, currency: str = "EUR") -> tuple[str, str]:
    return messages.check_texts(c.as_json(), currency)


class TestHealthyInvoice:
    def test_every_check_passes_and_the_whole_amount_is_offered(self) -> None:
        outcome = evaluate(healthy(), POLICY)
        assert outcome.eligible
        assert outcome.failed == []
        assert [c.code for c in outcome.checks] == list(CHECK_CODES)
        assert outcome.max_amount_cents == 1_200_000  # 100 % of what is due: no holdback
        assert outcome.max_duration_days == 55  # 45 days to the due date + 10 of grace
        assert outcome.min_duration_days == 3
        assert outcome.counterfactuals == ()

    def test_every_check_has_both_languages(self) -> None:
        for c in evaluate(healthy(), POLICY).checks:
            fr, en = texts(c)
            assert fr and en and fr != en


class TestDuration:
    def test_due_in_200_days_is_refused_with_the_date_it_becomes_eligible(self) -> None:
        outcome = evaluate(healthy(due_date=TODAY + timedelta(days=200)), POLICY)
        assert outcome.failed == ["duration_fits"]
        c = check(outcome, "duration_fits")
        assert c.reason == "too_far"
        fr, en = texts(c)
        assert en == "The invoice is due in 200 days: financing lasts at most 120 days."
        assert "200 jours" in fr and "120 jours" in fr
        [cf] = outcome.counterfactuals
        assert cf.code == "due_date_within_max"
        cf_fr, cf_en = messages.counterfactual_texts(cf.code, c.as_json()["figures"], "EUR")
        eligible_from = TODAY + timedelta(days=80)
        assert en and cf_en == (
            f"Eligible if the due date were within 120 days, that is from {eligible_from.day} "
            f"{eligible_from.strftime('%B')} {eligible_from.year}."
        )
        assert "à partir du 21/05/2026" in cf_fr

    def test_due_yesterday_is_refused_as_overdue_only(self) -> None:
        outcome = evaluate(healthy(due_date=TODAY - timedelta(days=1)), POLICY)
        assert outcome.failed == ["not_overdue"]
        assert check(outcome, "duration_fits").effect == "na"
        _, en = texts(check(outcome, "not_overdue"))
        assert en == (
            "The invoice fell due on 1 March 2026 (1 day ago): only invoices not yet due can be financed."
        )

    def test_due_tomorrow_is_eligible_thanks_to_grace(self) -> None:
        outcome = evaluate(healthy(due_date=TODAY + timedelta(days=1)), POLICY)
        assert outcome.eligible
        assert outcome.max_duration_days == 11

    def test_too_close_without_grace(self) -> None:
        policy = merged(POLICY, {"grace_days": 0})
        outcome = evaluate(healthy(due_date=TODAY + timedelta(days=2)), policy)
        assert outcome.failed == ["duration_fits"]
        assert check(outcome, "duration_fits").reason == "too_close"

    def test_duration_never_exceeds_the_policy(self) -> None:
        outcome = evaluate(healthy(due_date=TODAY + timedelta(days=118)), POLICY)
        assert outcome.max_duration_days == 120


class TestInvoiceState:
    @pytest.mark.parametrize(
        ("changes", "reason"),
        [
            ({"status": "cancelled"}, "cancelled"),
            ({"lifecycle_code": 220}, "cancelled"),
            ({"document_type": "credit_note"}, "credit_note"),
            ({"status": "paid", "amount_paid_cents": 1_200_000}, "paid"),
            ({"lifecycle_code": 212}, "paid"),
        ],
    )
    def test_not_open(self, changes: dict[str, Any], reason: str) -> None:
        outcome = evaluate(healthy(**changes), POLICY)
        assert "invoice_open" in outcome.failed
        assert check(outcome, "invoice_open").reason == reason

    def test_partially_paid_offers_what_is_still_due(self) -> None:
        outcome = evaluate(healthy(status="partially_paid", amount_paid_cents=200_000), POLICY)
        assert outcome.eligible
        assert outcome.max_amount_cents == 1_000_000
        _, en = texts(check(outcome, "invoice_open"))
        assert en == "Open invoice: €10,000.00 still due (€2,000.00 already paid)."

    def test_supplier_invoice_is_financed_by_paying_the_supplier(self) -> None:
        outcome = evaluate(healthy(kind="payable"), POLICY)
        assert outcome.eligible and outcome.failed == []
        b2b = next(c for c in outcome.checks if c.code == "b2b")
        assert b2b.reason == "supplier"

    def test_public_sector_buyer_follows_policy(self) -> None:
        f = healthy(debtor_legal_form="7210")
        assert evaluate(f, POLICY).failed == ["b2b"]
        assert evaluate(f, merged(POLICY, {"allow_public_sector_debtors": True})).eligible

    def test_other_currency(self) -> None:
        outcome = evaluate(healthy(currency="USD"), POLICY)
        assert outcome.failed == ["currency_accepted"]

    def test_amount_below_minimum(self) -> None:
        outcome = evaluate(healthy(amount_cents=40_000), POLICY)
        assert outcome.failed == ["amount_within_bounds"]

    def test_amount_above_maximum_is_capped(self) -> None:
        f = healthy(amount_cents=60_000_000, buyer_approved=True, lifecycle_code=205)
        policy = merged(
            POLICY,
            {
                "debtor_limit_cents": 100_000_000,
                "seller_limit_cents": 100_000_000,
                "concentration_max_bps": 10_000,
            },
        )
        outcome = evaluate(f, policy)
        assert outcome.eligible
        assert outcome.max_amount_cents == 50_000_000
        assert check(outcome, "amount_within_bounds").effect == "cap"


class TestDisputes:
    def test_partly_disputed_invoice_is_eligible_for_the_undisputed_part_only(self) -> None:
        outcome = evaluate(healthy(lifecycle_code=207, lifecycle_amount_cents=300_000), POLICY)
        assert outcome.eligible
        assert outcome.max_amount_cents == 900_000
        c = check(outcome, "not_disputed")
        assert (c.effect, c.reason) == ("cap", "partly_disputed")
        _, en = texts(c)
        assert en == (
            "Your customer disputes €3,000.00 of the invoice: only the undisputed part, €9,000.00, "
            "can be financed."
        )
        assert [h.code for h in outcome.counterfactuals] == ["partial_dispute"]

    def test_partial_approval_offers_the_approved_amount(self) -> None:
        outcome = evaluate(healthy(lifecycle_code=206, lifecycle_amount_cents=700_000), POLICY)
        assert outcome.max_amount_cents == 700_000

    def test_payments_count_against_the_undisputed_part(self) -> None:
        f = healthy(lifecycle_code=207, lifecycle_amount_cents=300_000, amount_paid_cents=500_000)
        assert evaluate(f, POLICY).max_amount_cents == 400_000

    def test_whole_dispute_refuses(self) -> None:
        for changes in ({"lifecycle_code": 207}, {"status": "disputed"}):
            outcome = evaluate(healthy(**changes), POLICY)
            assert outcome.failed == ["not_disputed"]
            assert check(outcome, "not_disputed").reason == "disputed"
            assert [h.code for h in outcome.counterfactuals] == ["resolve_dispute"]

    @pytest.mark.parametrize(
        ("code", "reason"), [(210, "refused"), (213, "refused"), (208, "suspended"), (224, "direct_payment")]
    )
    def test_refused_or_suspended_by_the_buyer(self, code: int, reason: str) -> None:
        outcome = evaluate(healthy(lifecycle_code=code), POLICY)
        assert outcome.failed == ["not_disputed"]
        assert check(outcome, "not_disputed").reason == reason
        _, en = texts(check(outcome, "not_disputed"))
        assert en.startswith("On the e-invoicing platform")

    def test_undisputed_part_below_minimum(self) -> None:
        f = healthy(lifecycle_code=207, lifecycle_amount_cents=1_170_000)
        assert evaluate(f, POLICY).failed == ["not_disputed"]


class TestParties:
    def test_seller_unknown_or_closed_in_sirene(self) -> None:
        assert evaluate(healthy(seller_in_registry=False), POLICY).failed == ["seller_verified"]
        outcome = evaluate(healthy(seller_active=False, seller_ceased_on=date(2025, 12, 31)), POLICY)
        _, en = texts(check(outcome, "seller_verified"))
        assert (
            en == "Your company (SIREN 303 265 045) is closed in the SIRENE register since 31 December 2025."
        )

    def test_debtor_in_liquidation(self) -> None:
        f = healthy(debtor_proceeding="liquidation", debtor_proceeding_date=date(2026, 2, 10))
        outcome = evaluate(f, POLICY)
        assert outcome.failed == ["debtor_no_proceedings"]
        fr, en = texts(check(outcome, "debtor_no_proceedings"))
        assert en == (
            "Your customer “Grands Magasins SA” is in collective proceedings: judicial liquidation, "
            "judgment of 10 February 2026 (BODACC)."
        )
        assert "liquidation judiciaire" in fr

    def test_closed_proceeding_does_not_block(self) -> None:
        assert evaluate(healthy(debtor_proceeding="cloture"), POLICY).eligible

    def test_seller_in_safeguard(self) -> None:
        assert evaluate(healthy(seller_proceeding="sauvegarde"), POLICY).failed == ["seller_no_proceedings"]

    def test_debtor_without_siren_fails_once_and_says_why(self) -> None:
        outcome = evaluate(
            healthy(debtor_siren=None, invoice_fingerprint=None, debtor_in_registry=False), POLICY
        )
        assert outcome.failed == ["debtor_identified"]
        assert check(outcome, "debtor_active").effect == "na"
        assert check(outcome, "not_already_financed").effect == "na"
        assert [h.code for h in outcome.counterfactuals] == ["add_debtor_siren"]

    def test_invalid_siren(self) -> None:
        outcome = evaluate(healthy(debtor_siren="123456789"), POLICY)
        assert outcome.failed == ["debtor_identified"]

    def test_debtor_closed_or_unknown(self) -> None:
        assert evaluate(healthy(debtor_in_registry=False), POLICY).failed == ["debtor_active"]
        assert evaluate(healthy(debtor_active=False), POLICY).failed == ["debtor_active"]

    def test_related_parties(self) -> None:
        assert evaluate(healthy(debtor_siren="303265045"), POLICY).failed == ["not_related_party"]
        outcome = evaluate(healthy(related_party="same_group"), POLICY)
        assert outcome.failed == ["not_related_party"]
        _, en = texts(check(outcome, "not_related_party"))
        assert "(same group)" in en


class TestBooks:
    def test_not_connected_is_not_applicable(self) -> None:
        assert check(evaluate(healthy(), POLICY), "in_books").effect == "na"

    def test_in_books_with_the_same_amount(self) -> None:
        f = healthy(books_connected=True, books_as_of=TODAY, books_lines=1, books_debit_cents=1_200_000)
        outcome = evaluate(f, POLICY)
        assert check(outcome, "in_books").effect == "ok"
        assert next(x for x in outcome.features if x.name == "books_match").points == 6

    def test_other_amount_in_books(self) -> None:
        f = healthy(books_connected=True, books_as_of=TODAY, books_lines=1, books_debit_cents=1_150_000)
        outcome = evaluate(f, POLICY)
        assert outcome.failed == ["in_books"]
        _, en = texts(check(outcome, "in_books"))
        assert en == "Your books show invoice F-2026-001 at €11,500.00, not €12,000.00."

    def test_missing_from_books_that_cover_its_date(self) -> None:
        f = healthy(books_connected=True, books_as_of=TODAY)
        assert evaluate(f, POLICY).failed == ["in_books"]

    def test_issued_after_the_books_is_not_held_against_it(self) -> None:
        f = healthy(books_connected=True, books_as_of=TODAY - timedelta(days=30))
        outcome = evaluate(f, POLICY)
        assert outcome.eligible
        assert check(outcome, "in_books").reason == "after_books"


class TestDoubleFinancing:
    def test_financed_through_another_account(self) -> None:
        outcome = evaluate(healthy(financed_elsewhere=1), POLICY)
        assert outcome.failed == ["not_already_financed"]
        c = check(outcome, "not_already_financed")
        assert c.reason == "financed_elsewhere"
        assert c.figures == {}  # nothing about the other account
        _, en = texts(c)
        assert "another account" in en

    def test_financed_here(self) -> None:
        assert (
            check(evaluate(healthy(financed_here=1), POLICY), "not_already_financed").reason
            == "financed_here"
        )

    def test_factored_on_the_platform(self) -> None:
        assert evaluate(healthy(lifecycle_code=225), POLICY).failed == ["not_already_financed"]

    def test_fingerprint_ignores_separators_and_case(self) -> None:
        assert normalised_number(" f-2026/001 ") == "F2026001"
        a = invoice_fingerprint("732829320", "F-2026-001", 100, TODAY)
        assert a == invoice_fingerprint("732829320", "f 2026 001", 100, TODAY)
        assert a != invoice_fingerprint("732829320", "F-2026-001", 101, TODAY)
        assert a != invoice_fingerprint("303265045", "F-2026-001", 100, TODAY)
        assert a != invoice_fingerprint("732829320", "F-2026-001", 100, TODAY + timedelta(days=1))


class TestBehaviourAndBank:
    def test_slow_payer(self) -> None:
        outcome = evaluate(healthy(behaviour_avg_days_late=75), POLICY)
        assert "debtor_payment_behaviour" in outcome.failed

    def test_many_unpaid(self) -> None:
        outcome = evaluate(healthy(behaviour_unpaid_overdue_count=6), POLICY)
        assert "debtor_payment_behaviour" in outcome.failed

    def test_no_history_is_neutral(self) -> None:
        f = healthy(behaviour_paid_count=None, behaviour_avg_days_late=None)
        outcome = evaluate(f, POLICY)
        assert outcome.eligible
        assert check(outcome, "debtor_payment_behaviour").reason == "no_history"

    def test_no_bank_caps_and_says_how_to_lift_it(self) -> None:
        outcome = evaluate(healthy(bank=BankFigures(connected=False, window_days=90)), POLICY)
        assert outcome.eligible
        assert outcome.max_amount_cents == 1_000_000
        [cf] = outcome.counterfactuals
        assert cf.code == "connect_bank"
        figures = check(outcome, "bank_health").as_json()["figures"]
        assert messages.counterfactual_texts(cf.code, figures, "EUR")[1] == (
            "Connect a bank account to lift the €10,000.00 cap."
        )

    def test_incidents_and_overdraft(self) -> None:
        bank = healthy().bank
        outcome = evaluate(healthy(bank=dataclasses.replace(bank, incidents=4)), POLICY)
        assert check(outcome, "bank_health").reason == "incidents"
        outcome = evaluate(healthy(bank=dataclasses.replace(bank, days_overdrawn=45)), POLICY)
        assert check(outcome, "bank_health").reason == "overdrawn"


class TestLimits:
    def test_debtor_at_its_limit(self) -> None:
        outcome = evaluate(healthy(debtor_outstanding_cents=20_000_000), POLICY)
        assert outcome.failed == ["debtor_limit"]
        c = check(outcome, "debtor_limit")
        assert c.figures == {"limit_cents": 20_000_000, "headroom_cents": 0}  # never others' amounts
        _, en = texts(c)
        assert en == (
            "This customer has reached the maximum financed on the platform (€200,000.00): no new "
            "invoice on it can be financed for now."
        )

    def test_debtor_headroom_caps_with_the_figure(self) -> None:
        outcome = evaluate(healthy(debtor_outstanding_cents=19_200_000, amount_cents=5_000_000), POLICY)
        assert outcome.eligible
        assert outcome.max_amount_cents == 800_000
        cf = outcome.counterfactuals[0]
        figures = check(outcome, "debtor_limit").as_json()["figures"]
        assert messages.counterfactual_texts(cf.code, figures, "EUR")[1] == (
            "Eligible up to €8,000.00 (debtor limit)."
        )

    def test_seller_limit(self) -> None:
        outcome = evaluate(healthy(seller_outstanding_cents=50_000_000), POLICY)
        assert outcome.failed == ["seller_limit"]

    def test_concentration_below_the_floor_does_not_apply(self) -> None:
        f = healthy(seller_outstanding_cents=1_000_000, seller_debtor_outstanding_cents=1_000_000)
        assert limits.concentration_headroom_cents(f, POLICY) == 9_000_000
        assert evaluate(f, POLICY).eligible

    def test_concentration_caps_then_refuses(self) -> None:
        # 200,000 € outstanding, 80,000 € on this customer: at 50 % it may take 40,000 € more
        f = healthy(
            seller_outstanding_cents=20_000_000,
            seller_debtor_outstanding_cents=8_000_000,
            amount_cents=6_000_000,
            debtor_outstanding_cents=8_000_000,
        )
        assert limits.concentration_headroom_cents(f, POLICY) == 4_000_000
        outcome = evaluate(f, POLICY)
        assert outcome.max_amount_cents == 4_000_000
        assert check(outcome, "concentration").effect == "cap"
        f = dataclasses.replace(f, seller_debtor_outstanding_cents=10_000_000)
        assert evaluate(f, POLICY).failed == ["concentration"]

    def test_buyer_approval_required_above_a_threshold(self) -> None:
        f = healthy(amount_cents=18_000_000)
        policy = merged(POLICY, {"concentration_max_bps": 10_000})
        outcome = evaluate(f, policy)
        assert outcome.max_amount_cents == 15_000_000
        assert next(h.code for h in outcome.counterfactuals) == "buyer_approval_lifts_cap"
        approved = evaluate(dataclasses.replace(f, buyer_approved=True), policy)
        assert approved.max_amount_cents == 18_000_000

    def test_the_tightest_cap_wins_and_is_listed_first(self) -> None:
        f = healthy(
            amount_cents=5_000_000,
            debtor_outstanding_cents=17_000_000,
            bank=BankFigures(connected=False, window_days=90),
        )
        outcome = evaluate(f, POLICY)
        assert outcome.max_amount_cents == 1_000_000
        assert [h.code for h in outcome.counterfactuals] == ["connect_bank", "debtor_limit"]


class TestScore:
    def test_contributions_add_up_to_the_score(self) -> None:
        s = score(healthy(), POLICY)
        assert sum(x.points for x in s.features) == s.points
        assert s.features[0].name == "base"
        assert all(x.name in FEATURE_UNITS for x in s.features)

    def test_grades(self) -> None:
        assert score(healthy(buyer_approved=True), POLICY).grade in ("A", "B")
        risky = healthy(
            behaviour_avg_days_late=55,
            behaviour_share_paid_late_bps=9_000,
            behaviour_unpaid_overdue_count=4,
            bank=dataclasses.replace(healthy().bank, incidents=3, days_overdrawn=25),
        )
        s = score(risky, POLICY)
        assert s.grade == "E"
        outcome = evaluate(risky, POLICY)
        assert "risk_grade" in outcome.failed

    def test_approval_that_would_lift_the_grade_is_suggested(self) -> None:
        policy = merged(POLICY, {"grades": {"D": 55, "C": 65, "B": 75, "A": 85}})
        f = healthy(bank=BankFigures(connected=False, window_days=90), behaviour_paid_count=None)
        outcome = evaluate(f, policy)
        assert "risk_grade" in outcome.failed
        assert "approval_lifts_grade" in [h.code for h in outcome.counterfactuals]


class TestMemo:
    def test_a_batch_memo_gives_the_same_decisions(self) -> None:
        variants = [
            healthy(
                invoice_id=f"inv_{n}", amount_cents=100_000 * (n + 5), due_date=TODAY + timedelta(days=n * 9)
            )
            for n in range(20)
        ]
        memo: dict[Any, Any] = {}
        for f in variants:
            with_memo = evaluate(f, POLICY, memo)
            alone = evaluate(f, POLICY)
            assert [c.as_json() for c in with_memo.checks] == [c.as_json() for c in alone.checks]
            assert with_memo.features == alone.features
            assert with_memo == alone


class TestWording:
    def test_every_reason_has_a_sentence(self) -> None:
        """Walk the rules with facts that reach each reason; every (code, reason) produced
        has both sentences, and every counterfactual code too."""
        bank = healthy().bank
        seen: set[tuple[str, str]] = set()
        hints: set[str] = set()
        variants = [
            healthy(),
            healthy(seller_in_registry=False),
            healthy(seller_active=False),
            healthy(seller_proceeding="redressement", seller_proceeding_date=TODAY),
            healthy(debtor_siren=None, invoice_fingerprint=None),
            healthy(debtor_siren="123456789"),
            healthy(debtor_in_registry=False),
            healthy(debtor_active=False),
            healthy(debtor_proceeding="plan"),
            healthy(kind="payable"),
            healthy(debtor_legal_form="7389"),
            healthy(debtor_siren="303265045"),
            healthy(related_party="other"),
            healthy(document_type="credit_note"),
            healthy(status="cancelled"),
            healthy(status="paid", amount_paid_cents=1_200_000),
            healthy(amount_paid_cents=100_000),
            *[healthy(lifecycle_code=c) for c in (206, 207, 208, 210, 224, 225, 205)],
            healthy(lifecycle_code=207, lifecycle_amount_cents=100_000),
            healthy(lifecycle_code=207, lifecycle_amount_cents=1_150_000),
            healthy(currency="CHF"),
            healthy(amount_cents=10_000),
            healthy(amount_cents=90_000_000),
            healthy(due_date=TODAY - timedelta(days=3)),
            healthy(due_date=TODAY + timedelta(days=300)),
            healthy(books_connected=True, books_as_of=TODAY),
            healthy(books_connected=True, books_as_of=TODAY - timedelta(days=60)),
            healthy(books_connected=True, books_as_of=TODAY, books_lines=1, books_debit_cents=1),
            healthy(books_connected=True, books_as_of=TODAY, books_lines=1, books_debit_cents=1_200_000),
            healthy(financed_here=1),
            healthy(financed_elsewhere=1),
            healthy(behaviour_paid_count=None),
            healthy(behaviour_avg_days_late=90),
            healthy(behaviour_unpaid_overdue_count=9),
            healthy(bank=BankFigures(connected=False, window_days=90)),
            healthy(bank=dataclasses.replace(bank, incidents=9)),
            healthy(bank=dataclasses.replace(bank, days_overdrawn=80)),
            healthy(amount_cents=16_000_000),
            healthy(buyer_approved=True),
            healthy(debtor_outstanding_cents=20_000_000),
            healthy(debtor_outstanding_cents=19_500_000),
            healthy(seller_outstanding_cents=49_999_000),
            healthy(seller_outstanding_cents=49_500_000),
            healthy(seller_outstanding_cents=20_000_000, seller_debtor_outstanding_cents=9_500_000),
            healthy(seller_outstanding_cents=20_000_000, seller_debtor_outstanding_cents=12_000_000),
            healthy(
                behaviour_avg_days_late=59,
                behaviour_unpaid_overdue_count=5,
                behaviour_share_paid_late_bps=10_000,
            ),
        ]
        for f in variants:
            outcome = evaluate(f, POLICY)
            figures = {c.code: c.as_json().get("figures", {}) for c in outcome.checks}
            for c in outcome.checks:
                seen.add((c.code, c.reason))
                fr, en = texts(c, f.currency)
                assert fr and en
            for h in outcome.counterfactuals:
                hints.add(h.code)
                fr, en = messages.counterfactual_texts(h.code, figures[h.check], f.currency)
                assert fr and en
        assert seen <= set(messages.CHECKS)
        assert len(seen) >= 60
        assert {code for code, _ in seen} == set(CHECK_CODES)
        assert len(hints) >= 17
        assert len(GATES) + 4 == len(CHECK_CODES)

    def test_money_and_dates(self) -> None:
        from escompte.eligibility import wording as w

        assert w.eur_fr(3_800_000) == "38 000,00 €"
        assert w.eur_en(3_800_000) == "€38,000.00"
        assert w.eur_en(-5) == "-€0.05"
        assert w.pct_fr(1_250) == "12,5 %"
        assert w.pct_en(5_000) == "50%"
        assert w.date_fr(TODAY) == "02/03/2026"
        assert w.date_en(TODAY) == "2 March 2026"
        assert w.siren("732829320") == "732 829 320"
