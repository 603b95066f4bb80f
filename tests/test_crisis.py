"""Crisis resources per region, from the real crisis_resources.yml and from broken files."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.crisis import CrisisResources, CrisisResourcesError, load_crisis_resources

CRISIS_FILE = Path(__file__).resolve().parent.parent / "crisis_resources.yml"


@pytest.mark.parametrize(
    "region, emergency_number, crisis_line_has, region_name",
    [
        ("US", "911", "988", "United States"),
        ("UK", "999", "116 123", "United Kingdom"),
        ("AU", "000", "13 11 14", "Australia"),
    ],
)
def test_real_file_has_each_regions_numbers(region, emergency_number, crisis_line_has, region_name):
    resources = load_crisis_resources(CRISIS_FILE, region)

    assert resources.region == region
    assert resources.emergency_number == emergency_number
    assert crisis_line_has in resources.crisis_line
    assert resources.region_name == region_name


@pytest.mark.parametrize("region", ["uk", "Uk", "UK"])
def test_region_is_case_insensitive(region):
    assert load_crisis_resources(CRISIS_FILE, region).emergency_number == "999"


def test_real_file_default_region_is_us():
    assert load_crisis_resources(CRISIS_FILE).region == "US"


def test_default_region_comes_from_the_file(tmp_path: Path):
    path = tmp_path / "crisis.yml"
    path.write_text(
        "region: AU\n"
        "regions:\n"
        "  US: {name: United States, emergency_number: '911', crisis_line: call or text 988}\n"
        "  AU: {name: Australia, emergency_number: '000', crisis_line: call Lifeline on 13 11 14}\n",
        encoding="utf-8",
    )

    resources = load_crisis_resources(path)

    assert (resources.region, resources.emergency_number) == ("AU", "000")


def test_template_variables():
    variables = load_crisis_resources(CRISIS_FILE, "UK").as_template_variables()

    assert variables == {
        "region": "UK",
        "region_name": "United Kingdom",
        "emergency_number": "999",
        "crisis_line": "call Samaritans on 116 123 (free, 24/7)",
    }


def test_resources_are_immutable():
    resources = load_crisis_resources(CRISIS_FILE, "US")

    with pytest.raises(AttributeError):
        resources.emergency_number = "0"  # type: ignore[misc]
    assert isinstance(resources, CrisisResources)


def test_unknown_region_names_the_region_and_the_known_ones():
    with pytest.raises(CrisisResourcesError, match=r"'FR' is not in .*\(known: AU, UK, US\)"):
        load_crisis_resources(CRISIS_FILE, "FR")


def test_missing_file_names_the_path(tmp_path: Path):
    path = tmp_path / "nowhere.yml"

    with pytest.raises(CrisisResourcesError, match="Cannot read crisis resources from .*nowhere.yml"):
        load_crisis_resources(path, "US")


@pytest.mark.parametrize(
    "content, message",
    [
        pytest.param("regions: [unclosed\n", "Cannot read crisis resources", id="malformed YAML"),
        pytest.param("", r"'US' is not in .*known: none", id="empty file"),
        pytest.param(
            "regions:\n  US: {name: United States, emergency_number: '911'}\n",
            "'US' .* lacks crisis_line",
            id="missing crisis line",
        ),
        pytest.param(
            "regions:\n  US: {name: United States, crisis_line: call 988}\n",
            "'US' .* lacks emergency_number",
            id="missing emergency number",
        ),
        pytest.param("regions:\n  US: call 911\n", "'US' is not in", id="region not a mapping"),
        pytest.param("- US\n- UK\n", "", id="top level a list"),
        pytest.param("regions:\n- US\n- UK\n", "", id="regions a list"),
    ],
)
def test_broken_files_raise_crisis_resources_error(tmp_path: Path, content: str, message: str):
    path = tmp_path / "crisis.yml"
    path.write_text(content, encoding="utf-8")

    with pytest.raises(CrisisResourcesError, match=message):
        load_crisis_resources(path, "US")


def test_default_region_that_is_not_a_name_raises_crisis_resources_error(tmp_path: Path):
    path = tmp_path / "crisis.yml"
    path.write_text(
        "region: 44\nregions:\n  UK: {emergency_number: '999', crisis_line: call 116 123}\n", encoding="utf-8"
    )

    with pytest.raises(CrisisResourcesError):
        load_crisis_resources(path)
