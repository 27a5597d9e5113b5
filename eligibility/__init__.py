"""Eligibility: real-time, explained decisions on invoices — checks, score and risk grade,
limits and exposure, double-financing detection, counterfactuals (docs/eligibility.md)."""
