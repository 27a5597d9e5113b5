"""Which handler imports which kind of file."""

from __future__ import annotations

import importlib

from escompte.connectors.base import Handler
from escompte.models import ImportKind

HANDLERS: dict[ImportKind, str] = {
    ImportKind.FEC: "escompte.connectors.fec:import_fec",
    ImportKind.FACTURX: "escompte.connectors.einvoice:import_facturx",
    ImportKind.CII: "escompte.connectors.einvoice:import_cii",
    ImportKind.UBL: "escompte.connectors.einvoice:import_ubl",
    ImportKind.CAMT053: "escompte.connectors.bank.camt053:import_camt053",
    ImportKind.OFX: "escompte.connectors.bank.ofx:import_ofx",
    ImportKind.BANK_CSV: "escompte.connectors.bank.csv:import_bank_csv",
    ImportKind.LIFECYCLE: "escompte.connectors.lifecycle:import_lifecycle",
    ImportKind.SIRENE: "escompte.connectors.registries:import_sirene",
    ImportKind.BODACC: "escompte.connectors.registries:import_bodacc",
}

# Kinds whose import brings new bank credits or open invoices: reconcile afterwards.
RECONCILE_AFTER = frozenset(
    {
        ImportKind.FEC,
        ImportKind.FACTURX,
        ImportKind.CII,
        ImportKind.UBL,
        ImportKind.CAMT053,
        ImportKind.OFX,
        ImportKind.BANK_CSV,
    }
)

# Kinds that record payments outside the bank (books lettering, "cashed" statuses): the
# company's whole debtor history is refreshed after them. Reconciliation refreshes the
# debtors it touches by itself.
BEHAVIOUR_AFTER = frozenset({ImportKind.FEC, ImportKind.LIFECYCLE})


def handler_for(kind: ImportKind) -> Handler:
    module_name, _, attr = HANDLERS[kind].partition(":")
    handler: Handler = getattr(importlib.import_module(module_name), attr)
    return handler
