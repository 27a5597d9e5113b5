"""Bank data: camt.053, OFX, CSV exports and aggregator pushes; accounts and balances."""
