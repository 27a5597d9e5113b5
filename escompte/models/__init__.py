"""ORM models, one file per aggregate, all on one metadata (Alembic's)."""

from escompte.models.advance import (
    LIVE_STATUSES,
    Advance,
    AdvanceKind,
    AdvanceStatus,
    PricingGrid,
    Quote,
    Repayment,
    RepaymentSource,
    RepaymentStatus,
)
from escompte.models.api_key import ApiKey, KeyMode, PrincipalKind
from escompte.models.bank import BankAccount, BankBalance, BankLineAlias, BankTransaction, MatchStatus
from escompte.models.base import Base
from escompte.models.book import BookLine
from escompte.models.company import Company
from escompte.models.data_import import REGISTRY_KINDS, DataImport, ImportFile, ImportKind, ImportStatus
from escompte.models.debtor import Debtor
from escompte.models.debtor_behaviour import DebtorBehaviour
from escompte.models.eligibility import (
    CompanySnapshot,
    EligibilityDecision,
    EligibilityPolicy,
    FinancedFingerprint,
    RelatedParty,
)
from escompte.models.event import Event
from escompte.models.idempotency import IdempotencyRecord
from escompte.models.invoice import DocumentType, Invoice, InvoiceKind, InvoiceSource, InvoiceStatus
from escompte.models.job import Job, JobStatus
from escompte.models.ledger import AccountType, LedgerAccount, LedgerPosting, LedgerTransaction
from escompte.models.lifecycle import InvoiceLifecycleEvent
from escompte.models.partner import Partner
from escompte.models.payment import Payment, PaymentAllocation, PaymentSource
from escompte.models.payment_rail import (
    OperationKind,
    OperationStatus,
    PaymentFile,
    PaymentOperation,
    PaymentProfile,
    StripeEvent,
)
from escompte.models.registry import InsolvencyProceeding, RegistryCompany

__all__ = [
    "LIVE_STATUSES",
    "REGISTRY_KINDS",
    "AccountType",
    "Advance",
    "AdvanceKind",
    "AdvanceStatus",
    "ApiKey",
    "BankAccount",
    "BankBalance",
    "BankLineAlias",
    "BankTransaction",
    "Base",
    "BookLine",
    "Company",
    "CompanySnapshot",
    "DataImport",
    "Debtor",
    "DebtorBehaviour",
    "DocumentType",
    "EligibilityDecision",
    "EligibilityPolicy",
    "Event",
    "FinancedFingerprint",
    "IdempotencyRecord",
    "ImportFile",
    "ImportKind",
    "ImportStatus",
    "InsolvencyProceeding",
    "Invoice",
    "InvoiceKind",
    "InvoiceLifecycleEvent",
    "InvoiceSource",
    "InvoiceStatus",
    "Job",
    "JobStatus",
    "KeyMode",
    "LedgerAccount",
    "LedgerPosting",
    "LedgerTransaction",
    "MatchStatus",
    "OperationKind",
    "OperationStatus",
    "Partner",
    "Payment",
    "PaymentAllocation",
    "PaymentFile",
    "PaymentOperation",
    "PaymentProfile",
    "PaymentSource",
    "PricingGrid",
    "PrincipalKind",
    "Quote",
    "RegistryCompany",
    "RelatedParty",
    "Repayment",
    "RepaymentSource",
    "RepaymentStatus",
    "StripeEvent",
]
