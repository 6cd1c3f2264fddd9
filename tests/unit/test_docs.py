"""The README's configuration reference is generated from the settings class and must stay current."""


from paths import ROOT

from stream.commands.configdoc import render, settings_table
from stream.settings import Settings

README = ROOT / "README.md"


def test_readme_configuration_reference_is_current():
    text = README.read_text()
    assert render(text) == text, (
        "README is behind stream/settings.py: run `python -m stream.commands.configdoc README.md`")


def test_every_setting_is_documented():
    table = settings_table()
    for name, field in Settings.model_fields.items():
        assert field.description, f"setting {name} has no docstring"
        assert f"`HOTPATH_{name.upper()}`" in table
