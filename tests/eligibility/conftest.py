from tests.api.conftest import world  # noqa: F401  (the two-partner, three-tenant fixture)
