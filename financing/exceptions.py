"""Financing's refusals, each a problem type of its own (``urn:escompte:problem:<code>``)."""

from __future__ import annotations

from escompte.errors import Conflict, DomainError


class NotEligible(Conflict):
    code = "not_eligible"
    title = "Invoice not eligible"


class EligibilityChanged(Conflict):
    code = "eligibility_changed"
    title = "Eligibility changed since the quote"


class QuoteExpired(Conflict):
    code = "quote_expired"
    title = "Quote expired"


class QuoteAlreadyAccepted(Conflict):
    code = "quote_already_accepted"
    title = "Quote already accepted"


class AlreadyFinanced(Conflict):
    code = "invoice_already_financed"
    title = "Invoice already financed"


class PaymentSetupRequired(Conflict):
    code = "payment_setup_required"
    title = "Payment set-up required"


class RepaymentInProgress(Conflict):
    code = "repayment_in_progress"
    title = "A repayment is in progress"


class ExtensionRefused(Conflict):
    code = "extension_refused"
    title = "Extension refused"


class PaymentsUnavailable(DomainError):
    status = 503
    code = "payments_unavailable"
    title = "Payment provider unavailable"


class PaymentRefused(DomainError):
    status = 402
    code = "payment_refused"
    title = "Refused by the payment provider"


class NothingToPay(Conflict):
    code = "nothing_to_pay"
    title = "Nothing to pay"
