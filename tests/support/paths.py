"""Where the tests find the repository, the shared public samples and the output schemas."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT.parent / "shared" / "samples"  # real public samples of the input formats, beside the repo
SCHEMAS = ROOT / "topics" / "schemas"
