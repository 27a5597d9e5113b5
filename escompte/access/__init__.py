"""Who is calling: API keys, partners and the three kinds of principal (admin, partner,
company), and the tenancy filter every query uses."""
