"""Step tests (a package: two test modules elsewhere share basenames with these)."""
