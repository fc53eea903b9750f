"""Helpers for fastpool's tests and benchmark: server launchers (PostgreSQL, MariaDB,
PgBouncer), stub connections, threads and the fault injector. Imported from the source
tree (or the unpacked sdist) as ``tests.support``; never installed with fastpool."""
