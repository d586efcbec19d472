"""Fakes for unit tests. Each behaves like the adapter it stands for; a shared behaviour suite in
tests/integration runs against both, so the fake cannot drift from the real thing."""
