"""Realizers: what turns the emulator's accepted state into running things (docs/emulator.md,
"Local execution"). They know nothing of HTTP or of the Google APIs: the backend that owns a
resource calls its realizer with plain names, and a realizer can be rebuilt from stored state.

:class:`Realizers` is the emulator's set of them (``emu.local``): off unless execution was asked
for, built on first use, stopped with the emulator.

The package imports nothing itself (:class:`Realizers` is in ``realizers``): a command that
only reads a front door's port (``frontdoor``) does not import the builds, jobs and PostgreSQL
realizers.
"""
