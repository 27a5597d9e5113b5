"""SMEs (companies) and their counterparties (debtors)."""
