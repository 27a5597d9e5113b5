"""Invoices (receivable and payable), their states and their validation."""
