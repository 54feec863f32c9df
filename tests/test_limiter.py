"""RateLimiter against real Redis, standalone and cluster: algorithms, all-or-
nothing checks, lists, backoff, usage, live policies and bad input."""

from __future__ import annotations

import time
from typing import Any

import pytest
from redis.crc import key_slot

from redismem import (
    InvalidLimit,
    InvalidSubject,
    UnknownPolicy,
)
from redismem.execution import run_pipelined
from redismem.keys import ALLOWED_SUBJECTS, DENIED_SUBJECTS, SubjectKeys
from redismem.limiter import Backoff, Limit, Policy, RateLimiter, UsageRetention
from redismem.limiter.usage import UsageQuery
from tests.limiter_helpers import all_keys, redis_ms, wait_for


def test_fixed_window_admits_exactly_the_limit_then_refuses_until_the_window_ends(
    limiter: RateLimiter,
) -> None:
    limit = "fixed_window:3/min"

    decisions = [limiter.hit("alice", limit) for _ in range(5)]

    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0, 0]
    refused = decisions[3]
    assert refused.reason == "limited"
    assert refused.limit == Limit.parse(limit)
    assert refused.retry_after is not None
    # Windows are aligned to the epoch: the wait ends at the next minute.
    window_end = (refused.time_ms // 60_000 + 1) * 60_000
    assert refused.retry_after == pytest.approx((window_end - refused.time_ms) / 1000)


def test_a_refused_hit_consumes_nothing(limiter: RateLimiter, client: Any) -> None:
    limits = [
        "fixed_window:2/h",
        "sliding_window:2/h",
        "token_bucket:1/h,burst=2",
        "leaky_bucket:1/h,burst=2",
        "quota:2/month",
    ]
    limiter.hit("bob", limits)
    limiter.hit("bob", limits)
    state = {key: client.dump(key) for key in all_keys(client) if ":s:" in key}

    assert not limiter.hit("bob", limits).allowed

    assert {key: client.dump(key) for key in state} == state


def test_sliding_window_retry_after_is_when_the_oldest_hit_leaves_the_window(
    limiter: RateLimiter,
) -> None:
    first = limiter.hit("carol", "sliding_window:2/10s")
    limiter.hit("carol", "sliding_window:2/10s")

    refused = limiter.hit("carol", "sliding_window:2/10s")

    assert not refused.allowed
    expected = (first.time_ms + 10_000 - refused.time_ms) / 1000
    assert refused.retry_after == pytest.approx(expected, abs=0.002)


def test_sliding_window_admits_no_double_burst_across_a_window_edge(
    limiter: RateLimiter, client: Any
) -> None:
    limit = "sliding_window:5/1s"
    # Start the burst late in an aligned second, as a fixed window would see it.
    wait_for(lambda: 700 <= redis_ms(client) % 1000 <= 850, timeout=2)
    burst = [limiter.hit("dave", limit) for _ in range(5)]
    assert all(d.allowed for d in burst)
    edge = (burst[0].time_ms // 1000 + 1) * 1000

    wait_for(lambda: redis_ms(client) >= edge + 50, timeout=2)
    second = [limiter.hit("dave", limit) for _ in range(5)]

    # A fixed window would have reset at the edge; the sliding one still holds
    # all five hits, so any 1 s span holds at most 5 admissions.
    assert not any(d.allowed for d in second)
    wait_for(lambda: redis_ms(client) >= burst[-1].time_ms + 1000, timeout=3)
    assert limiter.hit("dave", limit).allowed


def test_fixed_window_contrast_admits_a_second_burst_after_the_edge(
    limiter: RateLimiter, client: Any
) -> None:
    limit = "fixed_window:5/1s"
    wait_for(lambda: 700 <= redis_ms(client) % 1000 <= 850, timeout=2)
    burst = [limiter.hit("erin", limit) for _ in range(5)]
    edge = (burst[0].time_ms // 1000 + 1) * 1000

    wait_for(lambda: redis_ms(client) >= edge, timeout=2)

    assert all(limiter.hit("erin", limit).allowed for _ in range(5))


def test_token_bucket_spends_its_burst_then_refills_at_its_rate(
    limiter: RateLimiter,
) -> None:
    limit = "token_bucket:20/s,burst=5"
    spent = [limiter.hit("frank", limit) for _ in range(5)]
    refused = limiter.hit("frank", limit)

    assert all(d.allowed for d in spent)
    assert not refused.allowed
    # One token takes 50 ms; some refilled while the burst was being spent.
    assert refused.retry_after is not None and 0 < refused.retry_after <= 0.05

    admitted = wait_for(lambda: limiter.hit("frank", limit).allowed or None)
    assert admitted


def test_token_bucket_refill_never_exceeds_the_burst(
    limiter: RateLimiter, client: Any
) -> None:
    limit = "token_bucket:1000/s,burst=3"
    first = limiter.hit("gina", limit)
    wait_for(lambda: redis_ms(client) >= first.time_ms + 50)

    decisions = [limiter.hit("gina", limit, cost=1) for _ in range(4)]

    assert [d.allowed for d in decisions][:3] == [True, True, True]
    assert decisions[0].remaining == 2


def test_leaky_bucket_polices_at_its_capacity(limiter: RateLimiter) -> None:
    limit = "leaky_bucket:1/min,burst=3"

    decisions = [limiter.hit("hank", limit) for _ in range(4)]

    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert decisions[3].retry_after == pytest.approx(60, abs=0.1)


def test_leaky_bucket_shaping_admits_and_says_how_long_to_wait(
    limiter: RateLimiter,
) -> None:
    limit = "leaky_bucket:1/s,burst=3,mode=shape"

    decisions = [limiter.hit("ivan", limit) for _ in range(4)]

    assert [d.allowed for d in decisions] == [True, True, True, False]
    delays = [d.delay for d in decisions[:3]]
    # Each admitted unit waits for the ones ahead of it to drain (1 s each).
    assert delays[0] == 0
    assert delays[1] == pytest.approx(1.0, abs=0.1)
    assert delays[2] == pytest.approx(2.0, abs=0.1)


@pytest.mark.parametrize(
    "limit",
    [
        "fixed_window:5/s",
        "sliding_window:5/s",
        "token_bucket:1/s,burst=5",
        "leaky_bucket:1/s,burst=5",
        "quota:5/day",
    ],
)
def test_a_cost_above_capacity_is_refused_as_never_possible_and_consumes_nothing(
    limiter: RateLimiter, limit: str
) -> None:
    refused = limiter.hit("judy", limit, cost=6)

    assert not refused.allowed
    assert refused.reason == "too_costly"
    assert refused.retry_after is None
    assert limiter.peek("judy", limit, cost=5).allowed


def test_several_limits_are_all_or_nothing_and_the_refusing_one_is_named(
    limiter: RateLimiter,
) -> None:
    per_second, per_minute = "fixed_window:100/s", "sliding_window:3/min"
    monthly = "quota:1000/month"
    limits = [per_second, per_minute, monthly]
    for _ in range(3):
        assert limiter.hit("kate", limits).allowed

    refused = limiter.hit("kate", limits)

    assert not refused.allowed
    assert refused.limit == Limit.parse(per_minute)
    assert limiter.peek("kate", monthly).remaining == 997
    assert limiter.peek("kate", per_minute).remaining == 0


def test_an_allowed_multi_limit_hit_reports_the_tightest_limit(
    limiter: RateLimiter,
) -> None:
    decision = limiter.hit("liam", ["fixed_window:100/min", "fixed_window:10/s"])

    assert decision.limit == Limit.parse("fixed_window:10/s")
    assert decision.remaining == 9


def test_peek_consumes_nothing_and_counts_no_usage(
    limiter: RateLimiter, client: Any
) -> None:
    for _ in range(3):
        assert limiter.peek("mia", "token_bucket:1/h").allowed

    assert all_keys(client) == []


def test_refund_gives_cost_back_to_every_limit(limiter: RateLimiter) -> None:
    limits = [
        "fixed_window:5/min",
        "sliding_window:5/min",
        "token_bucket:1/min,burst=5",
    ]
    limiter.hit("nora", limits, cost=4)

    refunded = limiter.refund("nora", limits, cost=3)

    assert refunded.remaining == 4
    assert limiter.hit("nora", limits, cost=4).allowed


def test_reset_forgets_the_state_of_a_subject(limiter: RateLimiter) -> None:
    limiter.hit("owen", "token_bucket:1/h")
    limiter.hit("owen", "token_bucket:1/h", operation="write")

    assert limiter.reset("owen", "token_bucket:1/h") == 1
    assert limiter.hit("owen", "token_bucket:1/h").allowed
    assert not limiter.hit("owen", "token_bucket:1/h", operation="write").allowed
    assert limiter.reset("owen") >= 2
    assert limiter.hit("owen", "token_bucket:1/h", operation="write").allowed


def test_deny_list_refuses_and_allow_list_never_limits_on_every_instance(
    client: Any,
) -> None:
    one, other = RateLimiter(client), RateLimiter(client)

    one.deny("pete")
    denied = other.hit("pete", "fixed_window:100/s")
    one.allow("pete")
    allowed = [other.hit("pete", "token_bucket:1/h") for _ in range(3)]
    one.unlist("pete")

    assert (denied.allowed, denied.reason, denied.retry_after) == (
        False,
        "denied",
        None,
    )
    assert all(d.allowed and d.reason == "allow_listed" for d in allowed)
    assert other.hit("pete", "token_bucket:1/h").allowed
    assert not other.hit("pete", "token_bucket:1/h").allowed
    assert one.listing("pete") is None


def test_list_directories_follow_the_subject_entries(
    limiter: RateLimiter, client: Any
) -> None:
    limiter.deny("quinn")
    limiter.allow("rose")
    assert limiter.listed("deny") == ["quinn"]
    assert limiter.listed("allow") == ["rose"]
    assert client.get(SubjectKeys("quinn").acl) == b"deny"

    limiter.allow("quinn")

    assert limiter.listed("deny") == []
    assert limiter.listed("allow") == ["quinn", "rose"]
    assert client.smembers(DENIED_SUBJECTS) == set()
    assert client.smembers(ALLOWED_SUBJECTS) == {b"quinn", b"rose"}


def test_repeated_violations_earn_a_ban_that_grows_and_caps(
    client: Any,
) -> None:
    backoff = Backoff(violations=2, window=10, base=0.2, factor=3, max_ban=0.5)
    limiter = RateLimiter(client, backoff=backoff)
    limit = "token_bucket:1/h"
    assert limiter.hit("sam", limit).allowed

    assert limiter.hit("sam", limit).reason == "limited"
    banned = limiter.hit("sam", limit)
    during = limiter.hit("sam", "fixed_window:100/min")

    assert (banned.reason, banned.retry_after) == ("banned", 0.2)
    assert during.reason == "banned"
    assert during.retry_after is not None and 0 < during.retry_after <= 0.2
    wait_for(lambda: limiter.hit("sam", limit).reason != "banned" or None)
    second = limiter.hit("sam", limit)
    assert (second.reason, second.retry_after) == ("banned", 0.5)  # 0.6 capped


def test_strikes_decay_after_a_quiet_period(client: Any) -> None:
    backoff = Backoff(violations=1, window=10, base=0.1, factor=10, decay=0.3)
    limiter = RateLimiter(client, backoff=backoff)
    limit = "token_bucket:1/h"
    limiter.hit("tina", limit)
    first = limiter.hit("tina", limit)
    assert (first.reason, first.retry_after) == ("banned", 0.1)

    quiet_until = first.time_ms + 400
    wait_for(lambda: redis_ms(client) >= quiet_until)
    again = limiter.hit("tina", limit)

    assert (again.reason, again.retry_after) == ("banned", 0.1)


def test_usage_counts_allowed_and_refused_per_operation_with_bounded_retention(
    limiter: RateLimiter, client: Any
) -> None:
    for _ in range(3):
        limiter.hit("uma", "token_bucket:2/h", operation="read", cost=1)
    last = limiter.hit("uma", "fixed_window:10/min", operation="write", cost=4)

    usage = limiter.usage("uma", minutes=2, days=1)

    today = usage["days"][0]["operations"]
    assert today["read"] == {
        "allowed": 2,
        "refused": 1,
        "allowed_cost": 2,
        "refused_cost": 1,
    }
    assert today["write"]["allowed_cost"] == 4
    assert usage["minutes"][0]["operations"] == today
    # One hash per UTC day, kept for the retention after that day ends.
    day_end = (last.time_ms // 86_400_000 + 1) * 86_400
    usage_keys = [key for key in all_keys(client) if ":use:" in key]
    assert usage_keys == [f"rl:{{uma}}:use:{usage['days'][0]['day']}"]
    assert client.expiretime(usage_keys[0]) == day_end + limiter.retention.days


def test_usage_minutes_are_summed_into_their_day(
    limiter: RateLimiter, client: Any
) -> None:
    day = "20261203"
    key = f"rl:{{ula}}:use:{day}"
    counts = {"read:2358:a": 2, "read:2358:r": 1, "read:2359:a": 3, "read:2359:ax": 6}
    client.hset(key, mapping=counts)
    query = UsageQuery("ula", ("202612032359", "202612032358"), (day,))

    report = query.report(run_pipelined(client, query.calls()))

    assert [m["minute"] for m in report["minutes"]] == ["202612032359", "202612032358"]
    assert report["minutes"][0]["operations"]["read"]["allowed_cost"] == 9
    assert report["days"][0]["operations"]["read"] == {
        "allowed": 5,
        "refused": 1,
        "allowed_cost": 11,
        "refused_cost": 1,
    }


def test_top_refused_ranks_subjects_by_refusals(limiter: RateLimiter) -> None:
    for subject, tries in (("vera", 4), ("walt", 2), ("xena", 1)):
        for _ in range(tries):
            limiter.hit(subject, "token_bucket:1/h")

    assert limiter.top_refused(count=2) == [("vera", 3), ("walt", 1)]


def test_a_shrunk_capacity_clamps_the_saved_state(limiter: RateLimiter) -> None:
    limiter.hit("yara", "token_bucket:1/min,burst=10")

    shrunk = limiter.hit("yara", "token_bucket:1/min,burst=3")

    assert shrunk.allowed
    assert shrunk.remaining == 2


def test_every_key_of_a_subject_shares_one_cluster_slot(
    client: Any, limiter: RateLimiter
) -> None:
    limiter_with_ban = RateLimiter(client, backoff=Backoff(violations=1))
    limits = [
        "fixed_window:1/s",
        "sliding_window:1/s",
        "token_bucket:1/s",
        "leaky_bucket:1/s",
        "quota:1/month",
    ]
    limiter_with_ban.hit("zoe", limits)
    limiter_with_ban.hit("zoe", limits)
    limiter.deny("zoe")

    subject_keys = [key for key in all_keys(client) if "{zoe}" in key]

    assert len(subject_keys) >= 9
    assert {key_slot(key.encode()) for key in subject_keys} == {key_slot(b"zoe")}


@pytest.mark.parametrize(
    ("subject", "limits", "cost", "error"),
    [
        ("{tag}", "fixed_window:1/s", 1, InvalidSubject),
        ("", "fixed_window:1/s", 1, InvalidSubject),
        ("a b", "fixed_window:1/s", 1, InvalidSubject),
        ("ok", "fixed_window:1/s", 0, InvalidLimit),
        ("ok", "fixed_window:1/s", True, InvalidLimit),
        ("ok", "fixed_window:1/s", 1.5, InvalidLimit),
        ("ok", "nonsense", 1, InvalidLimit),
        ("ok", [], 1, InvalidLimit),
        ("ok", ["fixed_window:1/s", "fixed_window:5/s"], 1, InvalidLimit),
    ],
)
def test_bad_input_raises_a_clear_error_and_changes_nothing(
    limiter: RateLimiter,
    client: Any,
    subject: str,
    limits: Any,
    cost: Any,
    error: type[Exception],
) -> None:
    with pytest.raises(error):
        limiter.hit(subject, limits, cost=cost)

    assert all_keys(client) == []


@pytest.mark.parametrize("days", [-1, 1.5, True, "35d"])
def test_a_bad_usage_retention_is_refused(days: Any) -> None:
    with pytest.raises(InvalidLimit, match="retention"):
        UsageRetention(days=days)


def test_a_retention_of_zero_counts_no_usage(client: Any) -> None:
    limiter = RateLimiter(client, retention=UsageRetention(days=0))

    limiter.hit("una", "token_bucket:1/h")
    limiter.hit("una", "token_bucket:1/h")

    assert [key for key in all_keys(client) if ":use:" in key] == []
    assert limiter.top_refused() == []


def test_policies_are_read_from_redis_and_unknown_ones_raise(
    limiter: RateLimiter,
) -> None:
    limiter.save_policy(Policy.build("api", {"read": "token_bucket:2/h"}))

    decisions = [limiter.hit_policy("ann", "api", "read") for _ in range(3)]

    assert [d.allowed for d in decisions] == [True, True, False]
    assert limiter.hit_policy("ann", "api", "write").allowed  # no default: unlimited
    with pytest.raises(UnknownPolicy):
        limiter.hit_policy("ann", "nope", "read")


def test_a_policy_change_reaches_a_running_limiter_within_its_refresh_interval(
    client: Any,
) -> None:
    writer = RateLimiter(client)
    reader = RateLimiter(client, refresh_interval=0.2)
    writer.save_policy(Policy.build("api", {"read": "token_bucket:1/h"}))
    assert reader.hit_policy("ben", "api", "read").allowed
    assert not reader.hit_policy("ben", "api", "read").allowed

    writer.set_limits("api", "read", "fixed_window:5/min")
    changed = time.monotonic()
    wait_for(lambda: reader.hit_policy("ben", "api", "read").allowed or None)

    assert time.monotonic() - changed < 1.0
    assert reader.policy("api").limits_for("read") == (
        Limit.parse("fixed_window:5/min"),
    )


def test_local_policies_apply_until_redis_holds_one_of_that_name(
    client: Any,
) -> None:
    local = Policy.build("svc", {}, default="token_bucket:1/h")
    limiter = RateLimiter(client, policies=[local], refresh_interval=0.05)
    assert limiter.policy("svc") == local

    limiter.save_policy(Policy.build("svc", {}, default="fixed_window:9/min"))

    wait_for(lambda: limiter.policy("svc") != local or None)
    assert limiter.policy("svc").limits_for("any") == (
        Limit.parse("fixed_window:9/min"),
    )


def test_hit_many_sends_many_hits_in_one_pipeline(limiter: RateLimiter) -> None:
    requests = [(f"s{i % 3}", "token_bucket:2/h") for i in range(9)]

    decisions = limiter.hit_many(requests)

    assert sum(d.allowed for d in decisions) == 6
    assert sorted(limiter.top_refused(count=5)) == [("s0", 1), ("s1", 1), ("s2", 1)]


def test_the_embedded_mode_runs_the_same_scripts() -> None:
    limiter = RateLimiter.from_url("memory://", backoff=Backoff(violations=2))
    limits = ["sliding_window:2/h", "quota:5/month,tz=+01:00"]

    decisions = [limiter.hit("embedded-user", limits) for _ in range(4)]

    assert [d.reason for d in decisions] == ["ok", "ok", "limited", "banned"]
    assert limiter.usage("embedded-user", minutes=1, days=1)["days"]


def test_hit_many_validates_every_request_before_sending_any(
    limiter: RateLimiter, client: Any
) -> None:
    with pytest.raises(InvalidSubject):
        limiter.hit_many([("fine", "token_bucket:1/h"), ("{bad}", "token_bucket:1/h")])

    assert all_keys(client) == []


def test_a_list_entry_written_by_hand_applies_to_the_very_next_hit(
    limiter: RateLimiter, client: Any
) -> None:
    assert limiter.hit("hal", "token_bucket:5/h").allowed

    client.set(SubjectKeys("hal").acl, "deny")  # as with redis-cli, no limiter
    denied = limiter.hit("hal", "token_bucket:5/h")
    client.set(SubjectKeys("hal").acl, "allow")
    allowed = limiter.hit("hal", "token_bucket:5/h")

    assert denied.reason == "denied"
    assert allowed.reason == "allow_listed"


def test_the_allow_list_lifts_a_running_ban(client: Any) -> None:
    limiter = RateLimiter(client, backoff=Backoff(violations=1, base=60))
    limiter.hit("ike", "token_bucket:1/h")
    assert limiter.hit("ike", "token_bucket:1/h").reason == "banned"

    limiter.allow("ike")

    assert limiter.hit("ike", "token_bucket:1/h").allowed


def test_a_repeated_hit_still_refuses_costs_that_merely_equal_a_good_one(
    limiter: RateLimiter,
) -> None:
    assert limiter.hit("uma", "token_bucket:5/h").allowed

    for bad in (True, 1.0):
        with pytest.raises(InvalidLimit):
            limiter.hit("uma", "token_bucket:5/h", cost=bad)  # type: ignore[arg-type]

    assert limiter.peek("uma", "token_bucket:5/h").remaining == 4


def test_a_list_of_limits_changed_in_place_is_read_afresh(
    limiter: RateLimiter,
) -> None:
    limits = ["fixed_window:1/h"]
    assert limiter.hit("val", limits).allowed

    limits[0] = "fixed_window:2/h"

    assert limiter.hit("val", limits).allowed
    assert not limiter.hit("val", limits).allowed


def test_a_backoff_set_on_a_running_limiter_applies_to_the_next_hit(
    client: Any,
) -> None:
    limiter = RateLimiter(client)
    limiter.hit("wes", "token_bucket:1/h")
    assert limiter.hit("wes", "token_bucket:1/h").reason == "limited"

    limiter.backoff = Backoff(violations=1)

    assert limiter.hit("wes", "token_bucket:1/h").reason == "banned"
