"""hotpath's version, as the installed distribution says it (the OCSF output and `hotpath --version`)."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

# The name on PyPI: "hotpath" belongs to an unrelated project there. The command stays `hotpath`.
DISTRIBUTION = "hotpath-stream"


def version() -> str:
    """The installed distribution's version; in a checkout that is not installed, pyproject.toml's."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
        try:
            project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
        except (OSError, tomllib.TOMLDecodeError, KeyError):
            return "unknown"
        return project.get("version", "unknown") if project.get("name") == DISTRIBUTION else "unknown"
