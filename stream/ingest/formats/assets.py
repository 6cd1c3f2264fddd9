"""Asset context: what an entity is worth, what else it is called, whose traffic exercises it.

An entry is ``{id, aliases: [...], service, tags: {criticality, data_classification, environment,
owner, internet_facing, ...}, exercised_via: [...]}``. A record of the compacted ``hotpath.assets``
topic (key = asset id) holds one entry, a list of entries or ``{"assets": [...]}``; an asset file is
the same in YAML or JSON. Tags beyond the known ones are kept, but must be plain values (text,
number, boolean), since they are labels, not documents.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from stream.ingest.formats.findings import build, each
from stream.jsonsafe import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_DEPTH,
    expect_dict,
    expect_list,
    loads,
)
from stream.models import Asset, DecodeError

_ASSET_KEYS = ("aliases", "tags", "exercised_via")
_YAML_SUFFIXES = {".yaml", ".yml"}
_TAG_VALUE = str | int | float | bool | None


def is_asset_document(document: Any) -> bool:
    """True for ``{"assets": [...]}``, an entry (an ``id`` and asset fields), or an array of entries."""
    if isinstance(document, list):
        return bool(document) and all(isinstance(item, dict) and is_asset_document(item) for item in document)
    if not isinstance(document, dict):
        return False
    if "assets" in document:
        return True
    return isinstance(document.get("id"), str) and (
        any(key in document for key in _ASSET_KEYS) or isinstance(document.get("service"), str)
    )


def _asset(entry: Any) -> list[Asset]:
    entry = expect_dict(entry, "asset")
    asset = build(Asset, entry, "asset")
    if not asset.id:
        raise DecodeError("asset: id must not be empty")
    for key, value in (asset.tags.model_extra or {}).items():
        if not isinstance(value, _TAG_VALUE):
            raise DecodeError(f"asset {asset.id[:80]}: tag {key[:40]!r} must be text, a number, a boolean or null")
    return [asset]


def assets_from_document(document: Any) -> list[Asset]:
    """The assets in one parsed JSON or YAML value, or a DecodeError saying why not."""
    if isinstance(document, dict) and "assets" in document:
        document = expect_list(document["assets"], "assets")
        return each(document, "assets", _asset)
    if isinstance(document, list):
        return each(document, "", _asset)
    return _asset(document)


def decode_assets(value: bytes, max_bytes: int = DEFAULT_MAX_BYTES, max_depth: int = DEFAULT_MAX_DEPTH) -> list[Asset]:
    """Decode one ``hotpath.assets`` record value into its assets."""
    return assets_from_document(loads(value, max_bytes, max_depth))


def load_asset_file(path: str | Path, max_bytes: int = DEFAULT_MAX_BYTES,
                    max_depth: int = DEFAULT_MAX_DEPTH) -> list[Asset]:
    """Read an asset file: YAML for ``.yaml``/``.yml``, JSON otherwise. Errors name the file."""
    path = Path(path)
    try:
        if path.stat().st_size > max_bytes:
            raise DecodeError(f"file is {path.stat().st_size} bytes, over the {max_bytes}-byte limit")
        data = path.read_bytes()
        if path.suffix.lower() in _YAML_SUFFIXES:
            return assets_from_document(_yaml(data))
        return decode_assets(data, max_bytes, max_depth)
    except OSError as exc:
        raise DecodeError(f"asset file {path}: cannot read it: {exc.strerror or exc}") from None
    except DecodeError as exc:
        raise DecodeError(f"asset file {path}: {exc.reason}") from None


def _yaml(data: bytes) -> Any:
    try:
        return yaml.safe_load(data)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise DecodeError(f"not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    except (ValueError, RecursionError) as exc:  # a malformed date, or absurd nesting
        raise DecodeError(f"not valid YAML: {type(exc).__name__}: {str(exc)[:120]}") from None
