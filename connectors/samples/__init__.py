"""Sample files (bank statements …) written for tests, benchmarks and the demo."""
