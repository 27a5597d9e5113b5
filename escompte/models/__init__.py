"""ORM models, one file per aggregate, all on one metadata (Alembic's)."""

from escompte.models.api_key import ApiKey, KeyMode, PrincipalKind
from escompte.models.bank import BankAccount, BankBalance, BankTransaction, MatchStatus
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
from escompte.models.idempotency import IdempotencyRecord
from escompte.models.invoice import DocumentType, Invoice, InvoiceKind, InvoiceSource, InvoiceStatus
from escompte.models.job import Job, JobStatus
from escompte.models.lifecycle import InvoiceLifecycleEvent
from escompte.models.partner import Partner
from escompte.models.payment import Payment, PaymentAllocation, PaymentSource
from escompte.models.registry import InsolvencyProceeding, RegistryCompany

__all__ = [
    "REGISTRY_KINDS",
    "ApiKey",
    "BankAccount",
    "BankBalance",
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
    "MatchStatus",
    "Partner",
    "Payment",
    "PaymentAllocation",
    "PaymentSource",
    "PrincipalKind",
    "RegistryCompany",
    "RelatedParty",
]
