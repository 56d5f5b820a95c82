import sys
from pathlib import Path

# make `tests.*` importable (e.g. `from tests.contract import check_transcript`)
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

pytest_plugins = ["deployer.emulator.testing"]
