"""Connectors: the SME's data coming in — accounting (FEC), e-invoices (Factur-X, CII,
UBL) and their lifecycle statuses, bank statements (camt.053, OFX, CSV, aggregator
pushes), registries (SIRENE, BODACC) — and the reconciliation of bank credits with
open invoices."""
