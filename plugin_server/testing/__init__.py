"""Fakes for unit tests. Each behaves like the adapter it stands for, failures included; a shared
behaviour suite per store in tests/contract runs against both, so the fake cannot drift from the
real thing. Production code never imports this package (an import-linter contract)."""
