"""What the checks and counterfactuals say to a treasurer, in French and English.

A decision stores each check as (code, effect, reason, figures); the sentences are
written from those figures when the decision is shown, so a stored decision is small
(a batch of 10,000 writes fast) and always reads the same. Every (code, reason) the
rules produce has an entry here; a test walks them all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from typing import Any, Literal

from escompte.eligibility import wording as w

Lang = Literal["fr", "en"]
Texts = tuple[str, str]  # (French, English)
Writer = Callable[[Mapping[str, Any], str], Texts]

LIFECYCLE_NAMES: dict[int, Texts] = {
    200: ("Déposée", "Submitted"),
    201: ("Émise par la plateforme", "Issued by the platform"),
    202: ("Reçue par la plateforme", "Received by the platform"),
    203: ("Mise à disposition", "Made available"),
    204: ("Prise en charge", "In hand"),
    205: ("Approuvée", "Approved"),
    206: ("Approuvée partiellement", "Partially approved"),
    207: ("En litige", "Disputed"),
    208: ("Suspendue", "Suspended"),
    209: ("Complétée", "Completed"),
    210: ("Refusée", "Refused"),
    211: ("Paiement transmis", "Payment sent"),
    212: ("Encaissée", "Cashed"),
    213: ("Rejetée", "Rejected"),
    214: ("Visée", "Endorsed"),
    220: ("Annulée", "Cancelled"),
    224: ("Demande de paiement direct", "Direct payment requested"),
    225: ("Affacturée", "Factored"),
}

PROCEEDING_NAMES: dict[str, Texts] = {
    "sauvegarde": ("une procédure de sauvegarde", "safeguard proceedings"),
    "redressement": ("un redressement judiciaire", "receivership"),
    "liquidation": ("une liquidation judiciaire", "judicial liquidation"),
    "plan": ("un plan de sauvegarde ou de redressement", "a court-ordered safeguard or recovery plan"),
}

RELATION_NAMES: dict[str, Texts] = {
    "same_group": ("même groupe", "same group"),
    "parent": ("société mère", "parent company"),
    "subsidiary": ("filiale", "subsidiary"),
    "shareholder": ("actionnaire", "shareholder"),
    "other": ("lien déclaré", "declared link"),
}


def _d(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def _lc(code: int | None) -> Texts:
    if code is None:
        return ("?", "?")
    fr, en = LIFECYCLE_NAMES.get(code, (f"statut {code}", f"status {code}"))
    return (f"{code} {fr}", f"{code} {en}")


def _eur(cents: int, cur: str) -> Texts:
    return (w.money_fr(cents, cur), w.money_en(cents, cur))


def _who(g: Mapping[str, Any]) -> Texts:
    if g.get("party") == "seller":
        return ("Votre entreprise", "Your company")
    name = g.get("debtor_name") or "?"
    return (f"Votre client « {name} »", f"Your customer “{name}”")


# --- checks ------------------------------------------------------------------------------


def _seller_verified(reason: str) -> Writer:
    def write(g: Mapping[str, Any], cur: str) -> Texts:
        s = w.siren(g["siren"])
        if reason == "not_in_registry":
            return (
                f"Votre entreprise (SIREN {s}) est introuvable dans l'extrait SIRENE : son identité "
                "ne peut pas être vérifiée.",
                f"Your company (SIREN {s}) is not in the SIRENE extract, so it cannot be verified.",
            )
        if reason == "closed":
            ceased = _d(g.get("ceased_on"))
            return (
                f"Votre entreprise (SIREN {s}) est fermée au répertoire SIRENE"
                f"{f' depuis le {w.date_fr(ceased)}' if ceased else ''}.",
                f"Your company (SIREN {s}) is closed in the SIRENE register"
                f"{f' since {w.date_en(ceased)}' if ceased else ''}.",
            )
        return (
            f"Votre entreprise (SIREN {s}) est active au répertoire SIRENE.",
            f"Your company (SIREN {s}) is active in the SIRENE register.",
        )

    return write


def _proceedings(reason: str) -> Writer:
    def write(g: Mapping[str, Any], cur: str) -> Texts:
        who_fr, who_en = _who(g)
        if reason == "open":
            name_fr, name_en = PROCEEDING_NAMES.get(g["proceeding"], (g["proceeding"], g["proceeding"]))
            on = _d(g.get("judgment_date"))
            return (
                f"{who_fr} est en procédure collective : {name_fr}"
                f"{f' (jugement du {w.date_fr(on)}, BODACC)' if on else ' (BODACC)'}.",
                f"{who_en} is in collective proceedings: {name_en}"
                f"{f', judgment of {w.date_en(on)} (BODACC)' if on else ' (BODACC)'}.",
            )
        return (
            f"{who_fr} ne fait l'objet d'aucune procédure collective au BODACC.",
            f"{who_en} is not in collective proceedings (BODACC).",
        )

    return write


NO_SIREN: Texts = (
    "Non vérifiable sans le SIREN du client (voir debtor_identified).",
    "Cannot be checked without the customer's SIREN (see debtor_identified).",
)


def _debtor_identified(reason: str) -> Writer:
    def write(g: Mapping[str, Any], cur: str) -> Texts:
        name = g.get("debtor_name") or "?"
        if reason == "no_siren":
            return (
                f"Le SIREN de votre client « {name} » est inconnu : seules les factures sur des "
                "entreprises identifiées sont finançables.",
                f"The SIREN of your customer “{name}” is unknown: only invoices on identified "
                "companies can be financed.",
            )
        if reason == "invalid_siren":
            return (
                f"Le SIREN {g['siren']} de votre client n'est pas valide (clé de contrôle).",
                f"Your customer's SIREN {g['siren']} is not valid (check digit).",
            )
        s = w.siren(g["siren"])
        return (
            f"Votre client « {name} » est identifié (SIREN {s}).",
            f"Your customer “{name}” is identified (SIREN {s}).",
        )

    return write


def _debtor_active(reason: str) -> Writer:
    def write(g: Mapping[str, Any], cur: str) -> Texts:
        if reason == "no_siren":
            return NO_SIREN
        s = w.siren(g["siren"])
        if reason == "not_in_registry":
            return (
                f"Votre client (SIREN {s}) est introuvable dans l'extrait SIRENE : son activité ne "
                "peut pas être vérifiée.",
                f"Your customer (SIREN {s}) is not in the SIRENE extract, so it cannot be confirmed "
                "as trading.",
            )
        if reason == "closed":
            return (
                f"Votre client (SIREN {s}) est fermé au répertoire SIRENE.",
                f"Your customer (SIREN {s}) is closed in the SIRENE register.",
            )
        return (
            f"Votre client (SIREN {s}) est actif au répertoire SIRENE.",
            f"Your customer (SIREN {s}) is active in the SIRENE register.",
        )

    return write


def _fixed(fr: str, en: str) -> Writer:
    return lambda g, cur: (fr, en)


def _b2b_public(g: Mapping[str, Any], cur: str) -> Texts:
    form = g["legal_form"]
    return (
        f"Votre client est une personne morale de droit public (catégorie juridique {form}) : "
        "ces factures ne sont pas financées.",
        f"Your customer is a public-sector body (legal category {form}): these invoices are not financed.",
    )


def _related_declared(g: Mapping[str, Any], cur: str) -> Texts:
    fr, en = RELATION_NAMES.get(g["relation"], (g["relation"], g["relation"]))
    name = g.get("debtor_name") or "?"
    return (
        f"Votre client « {name} » est déclaré lié à votre entreprise ({fr}) : les factures "
        "intragroupe ne sont pas finançables.",
        f"Your customer “{name}” is declared related to your company ({en}): intra-group invoices "
        "are not financed.",
    )


def _invoice_open(reason: str) -> Writer:
    def write(g: Mapping[str, Any], cur: str) -> Texts:
        due_fr, due_en = _eur(g["amount_due_cents"], cur)
        if reason == "partially_paid":
            paid_fr, paid_en = _eur(g["amount_paid_cents"], cur)
            return (
                f"Facture ouverte : {due_fr} restent dus ({paid_fr} déjà payés).",
                f"Open invoice: {due_en} still due ({paid_en} already paid).",
            )
        return (f"Facture ouverte : {due_fr} dus.", f"Open invoice: {due_en} due.")

    return write


def _not_disputed(reason: str) -> Writer:
    def write(g: Mapping[str, Any], cur: str) -> Texts:
        contested_fr, contested_en = _eur(g.get("contested_cents", 0), cur)
        rest_fr, rest_en = _eur(g.get("undisputed_due_cents", 0), cur)
        lc_fr, lc_en = _lc(g.get("lifecycle_code"))
        if reason in ("refused", "suspended", "direct_payment"):
            what_fr, what_en = {
                "suspended": ("votre client a suspendu la facture", "the buyer suspended the invoice"),
                "direct_payment": (
                    "un sous-traitant a demandé au client de le payer directement",
                    "a subcontractor asked the buyer to pay it directly",
                ),
            }.get(reason, ("votre client a refusé la facture", "the buyer refused the invoice"))
            return (
                f"Sur la plateforme de facturation électronique, {what_fr} (statut {lc_fr}).",
                f"On the e-invoicing platform, {what_en} (status {lc_en}).",
            )
        if reason == "disputed":
            return (
                f"Votre client conteste la facture ({contested_fr} en litige) : une facture contestée "
                "n'est pas finançable.",
                f"Your customer disputes the invoice ({contested_en} contested): a disputed invoice "
                "cannot be financed.",
            )
        if reason == "undisputed_below_minimum":
            min_fr, min_en = _eur(g["min_amount_cents"], cur)
            return (
                f"Votre client conteste {contested_fr} de la facture : la part non contestée, {rest_fr}, "
                f"est sous le minimum finançable de {min_fr}.",
                f"Your customer disputes {contested_en} of the invoice: the undisputed part, {rest_en}, "
                f"is below the {min_en} minimum.",
            )
        if reason == "partly_disputed":
            return (
                f"Votre client conteste {contested_fr} de la facture : seule la part non contestée, "
                f"{rest_fr}, est finançable.",
                f"Your customer disputes {contested_en} of the invoice: only the undisputed part, "
                f"{rest_en}, can be financed.",
            )
        return (
            "Aucun litige ni refus du client sur cette facture.",
            "No dispute or refusal from the buyer on this invoice.",
        )

    return write


def _currency(reason: str) -> Writer:
    def write(g: Mapping[str, Any], cur: str) -> Texts:
        if reason == "refused":
            accepted = ", ".join(g.get("accepted", []))
            return (
                f"La facture est en {g['currency']} : seules les factures en {accepted} sont financées.",
                f"The invoice is in {g['currency']}: only invoices in {accepted} are financed.",
            )
        return (f"Facture en {g['currency']}.", f"Invoice in {g['currency']}.")

    return write


def _amount(reason: str) -> Writer:
    def write(g: Mapping[str, Any], cur: str) -> Texts:
        due_fr, due_en = _eur(g["amount_due_cents"], cur)
        min_fr, min_en = _eur(g["min_amount_cents"], cur)
        max_fr, max_en = _eur(g["max_amount_cents"], cur)
        if reason == "below_minimum":
            return (
                f"Le montant dû, {due_fr}, est inférieur au minimum finançable de {min_fr}.",
                f"The amount due, {due_en}, is below the {min_en} minimum.",
            )
        if reason == "above_maximum":
            return (
                f"Le montant dû, {due_fr}, dépasse le maximum par facture : financement possible "
                f"jusqu'à {max_fr}.",
                f"The amount due, {due_en}, is above the per-invoice maximum: it can be financed up "
                f"to {max_en}.",
            )
        return (
            f"Montant dans les limites ({min_fr} à {max_fr}).",
            f"Amount within limits ({min_en} to {max_en}).",
        )

    return write


def _not_overdue(reason: str) -> Writer:
    def write(g: Mapping[str, Any], cur: str) -> Texts:
        due = date.fromisoformat(g["due_date"])
        days = g["days_to_due"]
        if reason == "overdue":
            return (
                f"La facture est échue depuis le {w.date_fr(due)} ({w.days_fr(-days)} de retard) : seules "
                "les factures non échues sont finançables.",
                f"The invoice fell due on {w.date_en(due)} ({w.days_en(-days)} ago): only invoices not "
                "yet due can be financed.",
            )
        return (
            f"Échéance le {w.date_fr(due)}, dans {w.days_fr(days)}.",
            f"Due on {w.date_en(due)}, in {w.days_en(days)}.",
        )

    return write


def _duration(reason: str) -> Writer:
    def write(g: Mapping[str, Any], cur: str) -> Texts:
        if reason == "overdue":
            return (
                "Sans objet : la facture est échue (voir not_overdue).",
                "Not applicable: the invoice is past due (see not_overdue).",
            )
        days, grace = g["days_to_due"], g["grace_days"]
        longest_allowed, shortest = g["max_duration_days"], g["min_duration_days"]
        if reason == "too_far":
            return (
                f"L'échéance est dans {w.days_fr(days)} : un financement dure au plus "
                f"{w.days_fr(longest_allowed)}.",
                f"The invoice is due in {w.days_en(days)}: financing lasts at most "
                f"{w.days_en(longest_allowed)}.",
            )
        if reason == "too_close":
            return (
                f"L'échéance est trop proche ({w.days_fr(days)}) : un financement dure au moins "
                f"{w.days_fr(shortest)}, délai de grâce de {w.days_fr(grace)} compris.",
                f"The due date is too close ({w.days_en(days)}): financing lasts at least "
                f"{w.days_en(shortest)}, including {w.days_en(grace)} of grace.",
            )
        return (
            f"Durée possible : de {w.days_fr(shortest)} à {w.days_fr(g['longest_days'])} (échéance + "
            f"{w.days_fr(grace)} de grâce, {w.days_fr(longest_allowed)} au plus).",
            f"Possible duration: {w.days_en(shortest)} to {w.days_en(g['longest_days'])} (due date + "
            f"{w.days_en(grace)} of grace, {w.days_en(longest_allowed)} at most).",
        )

    return write


def _in_books(reason: str) -> Writer:
    def write(g: Mapping[str, Any], cur: str) -> Texts:
        if reason == "not_connected":
            return (
                "Votre comptabilité (FEC) n'est pas connectée : facture non rapprochée de vos livres.",
                "Your books (FEC) are not connected: the invoice is not matched against them.",
            )
        as_of = _d(g.get("books_as_of"))
        as_of_fr = w.date_fr(as_of) if as_of else "?"
        as_of_en = w.date_en(as_of) if as_of else "?"
        amount_fr, amount_en = _eur(g["invoice_amount_cents"], cur)
        if reason == "after_books":
            return (
                f"Facture émise après la dernière écriture de vos livres ({as_of_fr}) : rapprochement "
                "au prochain FEC.",
                f"Invoice issued after the last entry in your books ({as_of_en}): it will be matched "
                "with the next FEC.",
            )
        if reason == "missing":
            return (
                f"La facture {g['number']} est introuvable dans vos livres (FEC), qui vont jusqu'au "
                f"{as_of_fr}.",
                f"Invoice {g['number']} is not in your books (FEC), which run to {as_of_en}.",
            )
        if reason == "amount_differs":
            books_fr, books_en = _eur(g["books_amount_cents"], cur)
            return (
                f"Vos livres portent la facture {g['number']} pour {books_fr}, et non {amount_fr}.",
                f"Your books show invoice {g['number']} at {books_en}, not {amount_en}.",
            )
        return (
            f"La facture figure dans vos livres pour le même montant ({amount_fr}).",
            f"The invoice is in your books with the same amount ({amount_en}).",
        )

    return write


def _financed(reason: str) -> Writer:
    texts: dict[str, Texts] = {
        "factored": (
            "La plateforme de facturation électronique indique que la facture est déjà affacturée "
            "(statut 225 Affacturée).",
            "The e-invoicing platform reports the invoice as already factored (status 225 Factored).",
        ),
        "no_siren": NO_SIREN,
        "financed_elsewhere": (
            "Une facture identique (même client, numéro, montant et date) est déjà financée sur la "
            "plateforme par un autre compte : elle ne peut pas l'être deux fois.",
            "An identical invoice (same customer, number, amount and date) is already financed on the "
            "platform through another account: it cannot be financed twice.",
        ),
        "financed_here": (
            "Cette facture est déjà financée : un financement est en cours.",
            "This invoice is already financed: an advance on it is outstanding.",
        ),
        "not_financed": (
            "Cette facture n'est financée nulle part sur la plateforme.",
            "This invoice is not financed anywhere on the platform.",
        ),
    }
    return lambda g, cur: texts[reason]


def _behaviour(reason: str) -> Writer:
    def write(g: Mapping[str, Any], cur: str) -> Texts:
        if reason == "no_history":
            return (
                "Pas encore d'historique de paiement de ce client : critère neutre.",
                "No payment history for this customer yet: neutral.",
            )
        avg = g["avg_days_late"]
        if reason == "too_late":
            return (
                f"Votre client paie en moyenne avec {w.days_fr(avg)} de retard (maximum accepté : "
                f"{w.days_fr(g['max_avg_days_late'])}).",
                f"Your customer pays {w.days_en(avg)} late on average (at most "
                f"{w.days_en(g['max_avg_days_late'])} accepted).",
            )
        if reason == "too_many_unpaid":
            return (
                f"Votre client a {g['unpaid_overdue_count']} factures échues impayées (maximum accepté : "
                f"{g['max_unpaid_overdue_count']}).",
                f"Your customer has {g['unpaid_overdue_count']} unpaid overdue invoices (at most "
                f"{g['max_unpaid_overdue_count']} accepted).",
            )
        share = g["share_paid_late_bps"]
        return (
            f"Votre client paie en moyenne avec {w.days_fr(avg)} de retard ({w.pct_fr(share)} des factures "
            f"payées en retard, {g['paid_invoices']} payées).",
            f"Your customer pays {w.days_en(avg)} late on average ({w.pct_en(share)} of invoices paid "
            f"late, {g['paid_invoices']} paid).",
        )

    return write


def _bank(reason: str) -> Writer:
    def write(g: Mapping[str, Any], cur: str) -> Texts:
        if reason == "not_connected":
            cap_fr, cap_en = _eur(g["cap_cents"], cur)
            return (
                f"Aucun compte bancaire connecté : financement limité à {cap_fr} par facture.",
                f"No bank account connected: financing is limited to {cap_en} per invoice.",
            )
        window_fr, window_en = w.days_fr(g["window_days"]), w.days_en(g["window_days"])
        if reason == "incidents":
            return (
                f"Votre compte bancaire montre {g['incidents']} incidents (prélèvements rejetés, impayés, "
                f"frais d'incident) sur {window_fr} ; maximum accepté : {g['max_incidents']}.",
                f"Your bank account shows {g['incidents']} incidents (rejected debits, returned payments, "
                f"incident fees) over {window_en}; at most {g['max_incidents']} accepted.",
            )
        overdrawn: int | None = g.get("days_overdrawn")
        if reason == "overdrawn" and overdrawn is not None:
            return (
                f"Votre compte a été à découvert {w.days_fr(overdrawn)} sur les {window_fr} derniers ; "
                f"maximum accepté : {w.days_fr(g['max_days_overdrawn'])}.",
                f"Your account was overdrawn {w.days_en(overdrawn)} out of the last {window_en}; at most "
                f"{w.days_en(g['max_days_overdrawn'])} accepted.",
            )
        od_fr = f", {w.days_fr(overdrawn)} à découvert" if overdrawn is not None else ""
        od_en = f", {w.days_en(overdrawn)} overdrawn" if overdrawn is not None else ""
        return (
            f"Compte bancaire sain sur {window_fr} : {w.incidents_fr(g['incidents'])}{od_fr}, encaissements "
            f"{g['weeks_with_inflow']} semaines sur {g['weeks_in_window']}.",
            f"Healthy bank account over {window_en}: {w.incidents_en(g['incidents'])}{od_en}, "
            f"money coming in {g['weeks_with_inflow']} weeks out of {g['weeks_in_window']}.",
        )

    return write


def _approval(reason: str) -> Writer:
    def write(g: Mapping[str, Any], cur: str) -> Texts:
        if reason == "approved":
            return (
                "Votre client a approuvé la facture sur la plateforme de facturation électronique "
                "(205 Approuvée) : facture vérifiée.",
                "Your customer approved the invoice on the e-invoicing platform (205 Approved): a "
                "verified invoice.",
            )
        limit_fr, limit_en = _eur(g["threshold_cents"], cur)
        if reason == "required":
            return (
                f"Au-delà de {limit_fr}, la facture doit être approuvée par votre client sur la "
                "plateforme de facturation électronique.",
                f"Above {limit_en}, the invoice must be approved by your customer on the e-invoicing "
                "platform.",
            )
        return (
            f"Approbation du client non requise jusqu'à {limit_fr}.",
            f"Buyer approval not required up to {limit_en}.",
        )

    return write


def _debtor_limit(reason: str) -> Writer:
    def write(g: Mapping[str, Any], cur: str) -> Texts:
        limit_fr, limit_en = _eur(g["limit_cents"], cur)
        room_fr, room_en = _eur(g["headroom_cents"], cur)
        if reason == "reached":
            return (
                f"Ce client a atteint l'encours maximum financé sur la plateforme ({limit_fr}) : aucune "
                "nouvelle facture sur lui n'est finançable pour le moment.",
                f"This customer has reached the maximum financed on the platform ({limit_en}): no new "
                "invoice on it can be financed for now.",
            )
        if reason == "headroom":
            return (
                f"Plafond par client : financement possible jusqu'à {room_fr} sur cette facture.",
                f"Per-customer limit: this invoice can be financed up to {room_en}.",
            )
        return (
            f"Encours sur ce client dans la limite de {limit_fr}.",
            f"Exposure on this customer within the {limit_en} limit.",
        )

    return write


def _seller_limit(reason: str) -> Writer:
    def write(g: Mapping[str, Any], cur: str) -> Texts:
        limit_fr, limit_en = _eur(g["limit_cents"], cur)
        out_fr, out_en = _eur(g["outstanding_cents"], cur)
        room_fr, room_en = _eur(g["headroom_cents"], cur)
        if reason == "reached":
            return (
                f"Vos financements en cours, {out_fr}, atteignent votre plafond de {limit_fr}.",
                f"Your outstanding advances, {out_en}, reach your {limit_en} limit.",
            )
        if reason == "headroom":
            return (
                f"Votre plafond de {limit_fr} laisse {room_fr} finançables.",
                f"Your {limit_en} limit leaves {room_en} to finance.",
            )
        return (
            f"Vos financements en cours ({out_fr}) sont dans votre plafond de {limit_fr}.",
            f"Your outstanding advances ({out_en}) are within your {limit_en} limit.",
        )

    return write


def _concentration(reason: str) -> Writer:
    def write(g: Mapping[str, Any], cur: str) -> Texts:
        share_fr, share_en = w.pct_fr(g["max_share_bps"]), w.pct_en(g["max_share_bps"])
        if reason == "too_concentrated":
            on_fr, on_en = _eur(g["on_this_debtor_cents"], cur)
            all_fr, all_en = _eur(g["seller_outstanding_cents"], cur)
            return (
                f"Ce client représente déjà {on_fr} de vos {all_fr} de financements en cours : au-delà de "
                f"{share_fr} sur un seul client, le risque est trop concentré.",
                f"This customer already accounts for {on_en} of your {all_en} outstanding advances: "
                f"beyond {share_en} on one customer, the risk is too concentrated.",
            )
        if reason == "headroom":
            room_fr, room_en = _eur(g["headroom_cents"], cur)
            return (
                f"Pour que ce client reste sous {share_fr} de vos financements en cours, financement "
                f"possible jusqu'à {room_fr}.",
                f"To keep this customer under {share_en} of your outstanding advances, the invoice can be "
                f"financed up to {room_en}.",
            )
        return (
            f"Ce client resterait sous {share_fr} de vos financements en cours.",
            f"This customer would stay under {share_en} of your outstanding advances.",
        )

    return write


def _risk(reason: str) -> Writer:
    def write(g: Mapping[str, Any], cur: str) -> Texts:
        if reason == "too_risky":
            return (
                f"Note de risque {g['grade']} (score {g['score']}/100) : en dessous de "
                f"{g['worst_eligible_grade']}, la facture n'est pas finançable. Le détail du score est "
                "dans « features ».",
                f"Risk grade {g['grade']} (score {g['score']}/100): below {g['worst_eligible_grade']}, the "
                "invoice cannot be financed. The score's details are in “features”.",
            )
        return (
            f"Note de risque {g['grade']} (score {g['score']}/100).",
            f"Risk grade {g['grade']} (score {g['score']}/100).",
        )

    return write


CHECKS: dict[tuple[str, str], Writer] = {
    **{("seller_verified", r): _seller_verified(r) for r in ("not_in_registry", "closed", "active")},
    **{
        (c, r): _proceedings(r)
        for c in ("seller_no_proceedings", "debtor_no_proceedings")
        for r in ("open", "none")
    },
    ("debtor_no_proceedings", "no_siren"): lambda g, cur: NO_SIREN,
    **{("debtor_identified", r): _debtor_identified(r) for r in ("no_siren", "invalid_siren", "identified")},
    **{("debtor_active", r): _debtor_active(r) for r in ("no_siren", "not_in_registry", "closed", "active")},
    ("b2b", "payable"): _fixed(
        "C'est une facture fournisseur (à payer) : seules les factures émises à vos clients sont "
        "finançables ici.",
        "This is a supplier invoice (payable): only invoices you issued to your customers are financed here.",
    ),
    ("b2b", "supplier"): _fixed(
        "Facture d'un fournisseur : Escompte le paie maintenant par virement, vous remboursez à l'échéance.",
        "A supplier's invoice: Escompte pays the supplier now by transfer, you repay at maturity.",
    ),
    ("b2b", "public_sector"): _b2b_public,
    ("b2b", "business"): _fixed("Facture entre entreprises (B2B).", "Business-to-business invoice."),
    ("not_related_party", "same_siren"): _fixed(
        "Le client a le même SIREN que votre entreprise : une facture à soi-même n'est pas finançable.",
        "The customer has your own company's SIREN: an invoice to yourself cannot be financed.",
    ),
    ("not_related_party", "declared"): _related_declared,
    ("not_related_party", "unrelated"): _fixed(
        "Votre client n'est pas une entreprise liée à la vôtre.",
        "Your customer is not related to your company.",
    ),
    ("invoice_open", "credit_note"): _fixed(
        "C'est un avoir, pas une facture : il n'y a rien à financer.",
        "This is a credit note, not an invoice: there is nothing to finance.",
    ),
    ("invoice_open", "cancelled"): _fixed("La facture est annulée.", "The invoice is cancelled."),
    ("invoice_open", "paid"): _fixed(
        "La facture est déjà payée : il n'y a plus rien à financer.",
        "The invoice is already paid: there is nothing left to finance.",
    ),
    **{("invoice_open", r): _invoice_open(r) for r in ("open", "partially_paid")},
    **{
        ("not_disputed", r): _not_disputed(r)
        for r in (
            "refused",
            "suspended",
            "direct_payment",
            "disputed",
            "undisputed_below_minimum",
            "partly_disputed",
            "none",
        )
    },
    **{("currency_accepted", r): _currency(r) for r in ("refused", "accepted")},
    **{("amount_within_bounds", r): _amount(r) for r in ("below_minimum", "above_maximum", "within")},
    **{("not_overdue", r): _not_overdue(r) for r in ("overdue", "not_due")},
    **{("duration_fits", r): _duration(r) for r in ("overdue", "too_far", "too_close", "fits")},
    **{
        ("in_books", r): _in_books(r)
        for r in ("not_connected", "after_books", "missing", "amount_differs", "matched")
    },
    **{
        ("not_already_financed", r): _financed(r)
        for r in ("factored", "no_siren", "financed_elsewhere", "financed_here", "not_financed")
    },
    **{
        ("debtor_payment_behaviour", r): _behaviour(r)
        for r in ("no_history", "too_late", "too_many_unpaid", "good")
    },
    **{("bank_health", r): _bank(r) for r in ("not_connected", "incidents", "overdrawn", "healthy")},
    **{("buyer_approval", r): _approval(r) for r in ("approved", "required", "not_required")},
    **{("debtor_limit", r): _debtor_limit(r) for r in ("reached", "headroom", "within")},
    **{("seller_limit", r): _seller_limit(r) for r in ("reached", "headroom", "within")},
    **{("concentration", r): _concentration(r) for r in ("too_concentrated", "headroom", "within")},
    **{("risk_grade", r): _risk(r) for r in ("too_risky", "acceptable")},
}


# --- counterfactuals ---------------------------------------------------------------------


def _up_to(label_fr: str, label_en: str, key: str = "cap_cents") -> Writer:
    def write(g: Mapping[str, Any], cur: str) -> Texts:
        fr, en = _eur(g[key], cur)
        return (f"Finançable jusqu'à {fr} ({label_fr}).", f"Eligible up to {en} ({label_en}).")

    return write


def _cf_due_date(g: Mapping[str, Any], cur: str) -> Texts:
    on = date.fromisoformat(g["eligible_from"])
    days = g["max_duration_days"]
    return (
        f"Finançable si l'échéance était à {w.days_fr(days)} au plus, soit à partir du {w.date_fr(on)}.",
        f"Eligible if the due date were within {w.days_en(days)}, that is from {w.date_en(on)}.",
    )


def _cf_connect_bank(g: Mapping[str, Any], cur: str) -> Texts:
    fr, en = _eur(g["cap_cents"], cur)
    return (
        f"Connectez un compte bancaire pour lever le plafond de {fr}.",
        f"Connect a bank account to lift the {en} cap.",
    )


def _cf_books(g: Mapping[str, Any], cur: str) -> Texts:
    fr, en = _eur(g["invoice_amount_cents"], cur)
    return (
        f"Finançable une fois la facture présente dans vos livres pour {fr} (importez un FEC à jour).",
        f"Eligible once your books show the invoice at {en} (import an up-to-date FEC).",
    )


def _cf_partial_dispute(g: Mapping[str, Any], cur: str) -> Texts:
    fr, en = _eur(g["undisputed_due_cents"], cur)
    return (
        f"Finançable jusqu'à {fr} (part non contestée) ; la totalité une fois le litige levé.",
        f"Eligible up to {en} (undisputed part); in full once the dispute is settled.",
    )


def _cf_approval_cap(g: Mapping[str, Any], cur: str) -> Texts:
    fr, en = _eur(g["threshold_cents"], cur)
    return (
        "Finançable en totalité une fois la facture approuvée par votre client sur la plateforme de "
        f"facturation électronique ; d'ici là, jusqu'à {fr}.",
        f"Eligible in full once the buyer approves the invoice on the e-invoicing platform; until then, "
        f"up to {en}.",
    )


def _cf_approval_grade(g: Mapping[str, Any], cur: str) -> Texts:
    return (
        "Finançable une fois la facture approuvée par votre client sur la plateforme de facturation "
        f"électronique (la note passerait à {g['grade_if_approved']}).",
        "Eligible once the buyer approves the invoice on the e-invoicing platform (the grade would "
        f"become {g['grade_if_approved']}).",
    )


def _cf_seller_repay(g: Mapping[str, Any], cur: str) -> Texts:
    fr, en = _eur(g["repay_cents"], cur)
    return (
        f"Finançable à nouveau après le remboursement d'au moins {fr} de vos financements en cours.",
        f"Eligible again once at least {en} of your outstanding advances is repaid.",
    )


def _cf_behaviour(key: str) -> Writer:
    def write(g: Mapping[str, Any], cur: str) -> Texts:
        if key == "late":
            limit = g["max_avg_days_late"]
            return (
                f"Finançable quand le retard moyen de ce client sera revenu à {w.days_fr(limit)} au plus.",
                f"Eligible when this customer's average delay is back to {w.days_en(limit)} or less.",
            )
        limit = g["max_unpaid_overdue_count"]
        return (
            f"Finançable quand ce client aura au plus {limit} factures échues impayées.",
            f"Eligible when this customer has at most {limit} unpaid overdue invoices.",
        )

    return write


def _cf_bank(key: str) -> Writer:
    def write(g: Mapping[str, Any], cur: str) -> Texts:
        window_fr, window_en = w.days_fr(g["window_days"]), w.days_en(g["window_days"])
        if key == "incidents":
            return (
                f"Finançable quand votre compte ne montrera pas plus de {g['max_incidents']} incidents "
                f"sur {window_fr}.",
                f"Eligible when your account shows no more than {g['max_incidents']} incidents over "
                f"{window_en}.",
            )
        limit = g["max_days_overdrawn"]
        return (
            f"Finançable quand votre compte aura été à découvert au plus {w.days_fr(limit)} sur {window_fr}.",
            f"Eligible when your account has been overdrawn at most {w.days_en(limit)} over {window_en}.",
        )

    return write


APPROVE_FULL: Texts = (
    "Finançable une fois la facture approuvée par votre client sur la plateforme de facturation "
    "électronique (statut 205 Approuvée).",
    "Eligible once the buyer approves the invoice on the e-invoicing platform (status 205 Approved).",
)

COUNTERFACTUALS: dict[str, Writer] = {
    "seller_in_registry": _fixed(
        "Finançable une fois votre SIREN présent dans un extrait SIRENE récent.",
        "Eligible once a recent SIRENE extract lists your SIREN.",
    ),
    "add_debtor_siren": lambda g, cur: (
        f"Finançable une fois le SIREN de « {g.get('debtor_name')} » renseigné (facture électronique ou "
        "fiche client).",
        f"Eligible once the SIREN of “{g.get('debtor_name')}” is known (from an e-invoice or the customer "
        "record).",
    ),
    "buyer_approval": lambda g, cur: APPROVE_FULL,
    "resolve_dispute": _fixed(
        "Finançable une fois le litige levé et la facture approuvée par votre client (statut 205 Approuvée).",
        "Eligible once the dispute is settled and the buyer approves the invoice (status 205 Approved).",
    ),
    "partial_dispute": _cf_partial_dispute,
    "amount_cap": _up_to("maximum par facture", "per-invoice maximum"),
    "due_date_within_max": _cf_due_date,
    "import_books": _cf_books,
    "debtor_pays_faster": _cf_behaviour("late"),
    "debtor_settles_overdue": _cf_behaviour("unpaid"),
    "connect_bank": _cf_connect_bank,
    "fewer_bank_incidents": _cf_bank("incidents"),
    "fewer_days_overdrawn": _cf_bank("overdrawn"),
    "buyer_approval_lifts_cap": _cf_approval_cap,
    "debtor_limit": _up_to("plafond du client", "debtor limit"),
    "debtor_limit_frees_up": _fixed(
        "Finançable à nouveau quand des financements sur ce client auront été remboursés.",
        "Eligible again once advances on this customer are repaid.",
    ),
    "seller_limit": _up_to("votre plafond", "your limit"),
    "seller_limit_frees_up": _cf_seller_repay,
    "concentration": _up_to("concentration sur un client", "concentration on one customer"),
    "diversify": lambda g, cur: (
        f"Finançable quand ce client représentera moins de {w.pct_fr(g['max_share_bps'])} de vos "
        "financements en cours (remboursements sur ce client ou financements sur d'autres clients).",
        f"Eligible when this customer is under {w.pct_en(g['max_share_bps'])} of your outstanding "
        "advances (repayments on it, or advances on other customers).",
    ),
    "approval_lifts_grade": _cf_approval_grade,
}


def check_texts(check: Mapping[str, Any], currency: str) -> Texts:
    writer = CHECKS[(check["code"], check["reason"])]
    return writer(check.get("figures") or {}, currency)


def counterfactual_texts(code: str, figures: Mapping[str, Any], currency: str) -> Texts:
    return COUNTERFACTUALS[code](figures, currency)
