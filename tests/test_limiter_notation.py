"""Limit notation: parsing, canonical form, and clear errors for bad input."""

from __future__ import annotations

import pytest

from redismem import InvalidLimit
from redismem.limiter import Limit, Policy, parse_limits
from redismem.limiter.notation import FORMS


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fixed_window:1000/day", Limit("fixed_window", 1000, 86_400_000)),
        ("sliding_window:100/15min", Limit("sliding_window", 100, 900_000)),
        ("token_bucket:10/s,burst=50", Limit("token_bucket", 10, 1000, burst=50)),
        (
            "leaky_bucket:5/s,burst=10,mode=shape",
            Limit("leaky_bucket", 5, 1000, burst=10, shaping=True),
        ),
        ("quota:100000/month", Limit("quota", 100000, 86_400_000, calendar="month")),
        (
            "quota:10/day,tz=-05:30",
            Limit("quota", 10, 86_400_000, calendar="day", utc_offset=-19800),
        ),
        ("Fixed_Window : 5 / 2 Seconds", Limit("fixed_window", 5, 2000)),
        (
            "fixed_window:5/250ms,name=burst",
            Limit("fixed_window", 5, 250, name="burst"),
        ),
    ],
)
def test_notation_parses_to_the_limit_it_names(text: str, expected: Limit) -> None:
    assert Limit.parse(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "fixed_window:1000/day",
        "sliding_window:100/15min",
        "token_bucket:10/s,burst=50",
        "leaky_bucket:5/2h,burst=10,mode=shape",
        "quota:100000/month,tz=+02:00",
        "fixed_window:3/90s,name=x.y",
    ],
)
def test_canonical_notation_round_trips(text: str) -> None:
    assert str(Limit.parse(text)) == text
    assert Limit.parse(str(Limit.parse(text))) == Limit.parse(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "fixed_window",
        "fixed_window:10",
        "fixed_window:0/s",
        "fixed_window:-1/s",
        "fixed_window:10/fortnight",
        "fixed_window:10/s,burst=5",
        "token_bucket:10/s,burst=0",
        "token_bucket:10/s,burst=x",
        "token_bucket:10/s,mode=shape",
        "quota:10/week",
        "quota:10/2day",
        "quota:10/day,tz=+15:00",
        "quota:10/day,tz=2",
        "fixed_window:10/s,tz=+01:00",
        "hourglass:10/s",
        "fixed_window:10/s,name=a b",
        "fixed_window:10/s,color=red",
        "fixed_window:10/s,burst",
    ],
)
def test_bad_notation_raises_an_error_showing_the_accepted_forms(text: str) -> None:
    with pytest.raises(InvalidLimit) as refused:
        Limit.parse(text)

    assert FORMS in str(refused.value)
    assert isinstance(refused.value, ValueError)


def test_the_error_for_an_unknown_form_lists_every_algorithm() -> None:
    with pytest.raises(InvalidLimit) as refused:
        Limit.parse("ten per second")

    for algorithm in ("fixed_window", "sliding_window", "token_bucket", "leaky_bucket"):
        assert algorithm in str(refused.value)
    assert FORMS in str(refused.value)


def test_strings_limits_and_lists_are_accepted_alike() -> None:
    limit = Limit.parse("fixed_window:10/s")

    assert parse_limits(limit) == (limit,)
    assert parse_limits("fixed_window:10/s") == (limit,)
    assert parse_limits(["fixed_window:10/s", "quota:5/day"]) == parse_limits(
        "fixed_window:10/s; quota:5/day"
    )


def test_a_bucket_capacity_is_its_burst_and_defaults_to_its_amount() -> None:
    assert Limit.parse("token_bucket:10/s,burst=50").capacity == 50
    assert Limit.parse("leaky_bucket:7/s").capacity == 7
    assert Limit.parse("fixed_window:9/s").capacity == 9


def test_state_id_ignores_amount_and_burst_so_a_changed_limit_keeps_its_state() -> None:
    before = Limit.parse("token_bucket:10/s,burst=50")
    after = Limit.parse("token_bucket:20/s,burst=5")

    assert before.state_id == after.state_id
    assert before.state_id != Limit.parse("token_bucket:10/min").state_id


def test_a_policy_falls_back_to_its_default_and_else_is_unlimited() -> None:
    policy = Policy.build(
        "api", {"read": "token_bucket:10/s"}, default="fixed_window:1/s"
    )
    no_default = Policy.build("api", {"read": "token_bucket:10/s"})

    assert policy.limits_for("read") == parse_limits("token_bucket:10/s")
    assert policy.limits_for("write") == parse_limits("fixed_window:1/s")
    assert no_default.limits_for("write") == ()
