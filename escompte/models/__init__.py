"""ORM models, one file per aggregate, all on one metadata (Alembic's)."""

from escompte.models.api_key import ApiKey, KeyMode, PrincipalKind
from escompte.models.base import Base
from escompte.models.company import Company
from escompte.models.debtor import Debtor
from escompte.models.idempotency import IdempotencyRecord
from escompte.models.invoice import Invoice, InvoiceKind, InvoiceStatus
from escompte.models.job import Job, JobStatus
from escompte.models.partner import Partner

__all__ = [
    "ApiKey",
    "Base",
    "Company",
    "Debtor",
    "IdempotencyRecord",
    "Invoice",
    "InvoiceKind",
    "InvoiceStatus",
    "Job",
    "JobStatus",
    "KeyMode",
    "Partner",
    "PrincipalKind",
]
