"""Realizers: what turns the emulator's accepted state into running things (docs/emulator.md,
"Local execution"). They know nothing of HTTP or of the Google APIs: the backend that owns a
resource calls its realizer with plain names, and a realizer can be rebuilt from stored state.
"""
