"""Asset context: topic records (one entry, a list, {"assets": [...]}) and asset files (YAML, JSON)."""

from __future__ import annotations

import orjson
import pytest
from inputs import ASSET_YAML, LEDGER, SG

from stream.entities.resolve import EntityResolver
from stream.ingest.formats.assets import decode_assets, load_asset_file
from stream.models import DecodeError


@pytest.mark.parametrize("document", [LEDGER, [LEDGER], {"assets": [LEDGER]}])
def test_a_record_holds_one_entry_a_list_or_an_assets_object(document):
    [asset] = decode_assets(orjson.dumps(document))
    assert asset.id == LEDGER["id"]
    assert asset.aliases == LEDGER["aliases"]
    assert asset.service == "payments-api"
    assert (asset.tags.criticality, asset.tags.data_classification, asset.tags.owner) == ("critical", "pci",
                                                                                         "team-payments")
    assert asset.tags.internet_facing is False
    assert asset.tags.model_extra == {"cost_center": "cc-4411"}  # other tags are kept
    assert asset.exercised_via == ["service:payments-api"]


def test_yaml_and_json_asset_files_read_alike_and_resolve_aliases(tmp_path):
    yaml_file = tmp_path / "assets.yaml"
    yaml_file.write_text(ASSET_YAML)
    json_file = tmp_path / "assets.json"
    json_file.write_bytes(orjson.dumps({"assets": [LEDGER, SG]}))

    from_yaml = load_asset_file(yaml_file)
    from_json = load_asset_file(json_file)

    assert from_yaml == from_json
    resolver = EntityResolver()
    for asset in from_yaml:
        resolver.add_asset(asset)
    assert resolver.resolve("LEDGER.c9x2.eu-west-1.rds.amazonaws.com") == LEDGER["id"]
    assert resolver.exercised_by(LEDGER["id"]) == {SG["id"]}


@pytest.mark.parametrize(("document", "reason"), [
    ({"aliases": ["x"]}, r"asset: id: Field required"),
    ({"id": ""}, "id must not be empty"),
    ({"id": "db", "tags": {"criticality": "extreme"}}, r"asset: tags\.criticality: Input should be"),
    ({"id": "db", "tags": {"team": {"name": "payments"}}}, "tag 'team' must be text"),
    ({"id": "db", "aliases": "ledger"}, r"asset: aliases: Input should be a valid list"),
    ({"assets": {"id": "db"}}, "assets must be a JSON array"),
    ({"assets": [{"id": "db"}, 7]}, r"^assets\[1\]: asset must be a JSON object"),
])
def test_bad_entries_are_refused_with_a_reason(document, reason):
    with pytest.raises(DecodeError, match=reason):
        decode_assets(orjson.dumps(document))


def test_broken_yaml_file_names_the_file_and_line(tmp_path):
    broken = tmp_path / "assets.yml"
    broken.write_text("assets:\n  - id: db\n    aliases: [unclosed\n")
    with pytest.raises(DecodeError, match=rf"asset file {broken}: not valid YAML at line \d+"):
        load_asset_file(broken)


def test_missing_or_oversized_asset_file_is_a_clear_error(tmp_path):
    with pytest.raises(DecodeError, match="cannot read it"):
        load_asset_file(tmp_path / "absent.yaml")
    big = tmp_path / "big.json"
    big.write_bytes(orjson.dumps({"assets": [LEDGER] * 50}))
    with pytest.raises(DecodeError, match="over the 1000-byte limit"):
        load_asset_file(big, max_bytes=1000)
