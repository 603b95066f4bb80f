"""Phone numbers and email addresses people give to be contacted, and the numbers that are neither."""

from __future__ import annotations

import pytest

from bot.contact import contact_detail, contact_details


@pytest.mark.parametrize(
    "text, value",
    [
        ("call me on 555-123-4567", "555-123-4567"),
        ("my number is (555) 123-4567.", "(555) 123-4567"),
        ("5551234567", "5551234567"),
        ("555.123.4567 after 6pm", "555.123.4567"),
        ("+1 555 123 4567", "+1 555 123 4567"),
        ("1-800-273-8255", "1-800-273-8255"),
        ("UK: 020 7946 0958", "020 7946 0958"),
        ("mobile 07700 900123 thanks", "07700 900123"),
        ("+44 20 7946 0958", "+44 20 7946 0958"),
        ("+44 (0)20 7946 0958", "+44 (0)20 7946 0958"),
        ("AU 0412 345 678", "0412 345 678"),
        ("(02) 9876 5432", "(02) 9876 5432"),
        ("+61 2 9876 5432", "+61 2 9876 5432"),
        ("1300 123 456", "1300 123 456"),
        ("+33 1 23 45 67 89", "+33 1 23 45 67 89"),
        ("+49 30 1234567", "+49 30 1234567"),
        ("on 2024-08-09 call 555-123-4567", "555-123-4567"),
        ("reach me at 555 123 4567, thanks", "555 123 4567"),
    ],
)
def test_phone_numbers_in_common_forms_are_found(text: str, value: str):
    assert contact_detail(text) == ("phone", value)


@pytest.mark.parametrize(
    "text",
    [
        "The FDA decided on 2024-08-09",
        "it was 08/09/2024",
        "08.09.2024 was the date",
        "08-09-2024",
        "between 2019-2024 there were trials",
        "in 2019 2020 2021",
        "see NCT03537014 and NCT04077437",
        "it costs $15,000 or $1 500 000",
        "about £ 1 200 000 a year",
        "15,000,000 people",
        "pi is 3.14159265",
        "1-1-1-1-1-1-1-1-1-1",
        "1 2 3 4 5 6 7 8 9 10",
        "server 192.168.100.200",
        "12345678901234567890",
        "phase 3, 90 people, 2023",
        "id ABC1234567",
        "a rate of 1234567%",
        "2024-08-09 10:30",
    ],
)
def test_dates_years_trial_ids_prices_and_number_runs_are_not_phone_numbers(text: str):
    assert contact_detail(text) is None


@pytest.mark.parametrize(
    "text, value",
    [
        ("email me at jane.doe@example.org", "jane.doe@example.org"),
        ("A@B.CO.UK please", "A@B.CO.UK"),
        ("x+tag@mail.example.com or 555 123 4567", "x+tag@mail.example.com"),
    ],
)
def test_email_addresses_are_found_first(text: str, value: str):
    assert contact_detail(text) == ("email", value)


def test_every_detail_is_found_in_one_pass_without_overlaps():
    text = "jo5551234567@example.org, 555 123 4567 or a@b.co and 020 7946 0958"
    assert [(d.method, d.value) for d in contact_details(text)] == [
        ("email", "jo5551234567@example.org"),
        ("phone", "555 123 4567"),
        ("email", "a@b.co"),
        ("phone", "020 7946 0958"),
    ]
    assert all(text[d.start : d.end] == d.value for d in contact_details(text))


@pytest.mark.parametrize("text", ["", None, "no contact here", "a@a@a@a@a@", "@@@@", "+++", "(((())))"])
def test_texts_without_details(text):
    assert contact_detail(text) is None
    assert contact_details(text) == []
