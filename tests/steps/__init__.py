"""Step tests (a package: tests/steps/test_iam.py and tests/emulator/test_iam.py share a basename)."""
