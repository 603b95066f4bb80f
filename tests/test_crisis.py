"""Crisis resources per region, from the real crisis_resources.yml and from broken files."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Dict

import pytest
import yaml

from bot.crisis import LINE_KEYS, TEMPLATE_VARIABLES, CrisisResources, CrisisResourcesError, load_crisis_resources

CRISIS_FILE = Path(__file__).resolve().parent.parent / "crisis_resources.yml"
REGIONS = ["US", "UK", "AU"]


def region_yaml(name: str, emergency: str, crisis: str, **overrides: object) -> Dict[str, object]:
    """A complete region for a test file: every line, each with a source and a check date."""
    region: Dict[str, object] = {"name": name}
    for key in LINE_KEYS:
        text = {"emergency_number": emergency, "crisis_line": crisis}.get(key, f"call the {key}")
        region[key] = {"text": text, "source": "https://example.org/", "verified": "2026-12-04"}
    region.update(overrides)
    return region


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


@pytest.mark.parametrize(
    "region, line, has",
    [
        ("US", "crisis_text", "988"),
        ("US", "veterans_line", "838255"),
        ("US", "veterans_line", "press 1"),
        ("US", "poison_line", "1-800-222-1222"),
        ("US", "abuse_line", "1-800-799-7233"),
        ("US", "abuse_line", "START to 88788"),
        ("UK", "poison_line", "NHS 111"),
        ("UK", "abuse_line", "0808 2000 247"),
        ("AU", "crisis_text", "0477 13 11 14"),
        ("AU", "poison_line", "13 11 26"),
        ("AU", "abuse_line", "1800 737 732"),
    ],
)
def test_real_file_has_the_lines_each_kind_of_risk_needs(region: str, line: str, has: str):
    assert has in load_crisis_resources(CRISIS_FILE, region).as_template_variables()[line]


@pytest.mark.parametrize("region", REGIONS)
def test_every_real_line_names_an_official_page_and_a_recent_check(region: str):
    resources = load_crisis_resources(CRISIS_FILE, region)

    assert set(resources.lines) == set(LINE_KEYS)
    for key, line in resources.lines.items():
        assert line.source.startswith("https://"), key
        assert date.today() - timedelta(days=365) <= line.verified <= date.today(), f"{key} needs checking again"


@pytest.mark.parametrize("region", REGIONS)
def test_every_region_fills_every_template_variable(region: str):
    variables = load_crisis_resources(CRISIS_FILE, region).as_template_variables()

    assert set(variables) == set(TEMPLATE_VARIABLES)
    assert all(value.strip() and "{" not in value for value in variables.values())


@pytest.mark.parametrize("region", ["uk", "Uk", "UK"])
def test_region_is_case_insensitive(region):
    assert load_crisis_resources(CRISIS_FILE, region).emergency_number == "999"


def test_real_file_default_region_is_us():
    assert load_crisis_resources(CRISIS_FILE).region == "US"


def test_default_region_comes_from_the_file(tmp_path: Path):
    path = tmp_path / "crisis.yml"
    document = {
        "region": "AU",
        "regions": {
            "US": region_yaml("United States", "911", "call or text 988"),
            "AU": region_yaml("Australia", "000", "call Lifeline on 13 11 14"),
        },
    }
    path.write_text(yaml.safe_dump(document), encoding="utf-8")

    resources = load_crisis_resources(path)

    assert (resources.region, resources.emergency_number) == ("AU", "000")


def test_template_variables():
    variables = load_crisis_resources(CRISIS_FILE, "UK").as_template_variables()

    assert {key: variables[key] for key in ("region", "region_name", "emergency_number", "crisis_line")} == {
        "region": "UK",
        "region_name": "United Kingdom",
        "emergency_number": "999",
        "crisis_line": "call Samaritans on 116 123 (free, 24/7)",
    }
    assert variables["abuse_line"] == "call the National Domestic Abuse Helpline on 0808 2000 247 (free, 24/7)"


def test_resources_are_immutable():
    resources = load_crisis_resources(CRISIS_FILE, "US")

    with pytest.raises(AttributeError):
        resources.emergency_number = "0"  # type: ignore[misc]
    with pytest.raises(TypeError):
        resources.lines["poison_line"] = resources.lines["crisis_line"]  # type: ignore[index]
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
            yaml.safe_dump({"regions": {"US": region_yaml("United States", "911", "", crisis_line=None)}}),
            "'US' .* lacks crisis_line",
            id="missing crisis line",
        ),
        pytest.param(
            yaml.safe_dump({"regions": {"US": region_yaml("United States", "911", "call 988", emergency_number=None)}}),
            "'US' .* lacks emergency_number",
            id="missing emergency number",
        ),
        pytest.param(
            yaml.safe_dump({"regions": {"US": region_yaml("United States", "911", "call 988", poison_line=None)}}),
            "'US' .* lacks poison_line",
            id="missing poison line",
        ),
        pytest.param(
            yaml.safe_dump(
                {"regions": {"US": region_yaml("United States", "911", "call 988", crisis_line="call 988")}}
            ),
            "crisis_line must be a mapping with text, source and verified",
            id="line without source",
        ),
        pytest.param(
            yaml.safe_dump(
                {
                    "regions": {
                        "US": region_yaml(
                            "United States", "911", "x", abuse_line={"text": "call", "verified": "2026-12-04"}
                        )
                    }
                }
            ),
            "abuse_line needs the https:// address",
            id="line without source address",
        ),
        pytest.param(
            yaml.safe_dump(
                {
                    "regions": {
                        "US": region_yaml(
                            "United States", "911", "x", abuse_line={"text": "call", "source": "https://example.org/"}
                        )
                    }
                }
            ),
            "abuse_line needs the date it was verified",
            id="line without check date",
        ),
        pytest.param(
            yaml.safe_dump(
                {
                    "regions": {
                        "US": region_yaml(
                            "United States",
                            "911",
                            "x",
                            abuse_line={"text": "call {x}", "source": "https://example.org/", "verified": "2026-12-04"},
                        )
                    }
                }
            ),
            "abuse_line must not contain braces",
            id="braces in a line",
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
    document = {"region": 44, "regions": {"UK": region_yaml("United Kingdom", "999", "call 116 123")}}
    path.write_text(yaml.safe_dump(document), encoding="utf-8")

    with pytest.raises(CrisisResourcesError):
        load_crisis_resources(path)
