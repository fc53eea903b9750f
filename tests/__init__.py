"""fastpool's test suite (a package so that ``tests.support`` imports from the source tree)."""
