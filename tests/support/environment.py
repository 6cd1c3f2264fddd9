"""Settings as a process reads them from its environment alone."""

from __future__ import annotations

import os

from stream.settings import Settings, load_settings


def settings_read_from(environment: dict[str, str], monkeypatch) -> Settings:
    """The Settings hotpath reads in a process whose only HOTPATH_* variables are ``environment``."""
    for name in [name for name in os.environ if name.startswith("HOTPATH_")]:
        monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return load_settings()
