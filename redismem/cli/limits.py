"""``redismem limits``: hit, peek and reset limits; set and show live policies;
the allow and deny lists; usage statistics."""

from __future__ import annotations

import click

from redismem.cli.app import Context, emit, errors_as_exit_codes, main, pass_context
from redismem.limiter import Policy, RateLimiter
from redismem.limiter.calls import Listing
from redismem.limiter.notation import FORMS

LIMITS_HELP = f"Limits in notation, e.g. token_bucket:10/s,burst=50 ({FORMS})."


@main.group("limits")
def limits() -> None:
    """Rate limits: check them, change live policies, manage lists, read usage."""


def _limiter(ctx: Context) -> RateLimiter:
    return RateLimiter(ctx.client)


def _check(
    ctx: Context,
    mode: str,
    subject: str,
    limit: tuple[str, ...],
    policy: str | None,
    operation: str,
    cost: int,
) -> None:
    limiter = _limiter(ctx)
    if policy is not None:
        if limit:
            raise click.UsageError("give LIMIT arguments or --policy, not both")
        by_policy = limiter.hit_policy if mode == "hit" else limiter.peek_policy
        emit(by_policy(subject, policy, operation, cost=cost).as_json())
        return
    if not limit:
        raise click.UsageError("give at least one LIMIT, or --policy")
    check = limiter.hit if mode == "hit" else limiter.peek
    emit(check(subject, list(limit), cost=cost, operation=operation).as_json())


_subject = click.argument("subject")
_limit_args = click.argument("limit", nargs=-1)
_policy_option = click.option("--policy", help="Use this stored policy's limits.")
_operation_option = click.option(
    "--op", "operation", default="default", show_default=True, help="Operation name."
)
_cost_option = click.option(
    "--cost", type=int, default=1, show_default=True, help="Units to consume."
)


@limits.command()
@_subject
@_limit_args
@_policy_option
@_operation_option
@_cost_option
@pass_context
def hit(
    ctx: Context,
    subject: str,
    limit: tuple[str, ...],
    policy: str | None,
    operation: str,
    cost: int,
) -> None:
    """Consume COST from every LIMIT for SUBJECT, or from none; print the decision.

    LIMIT is notation such as token_bucket:10/s,burst=50 or quota:1000/month.
    """
    with errors_as_exit_codes():
        _check(ctx, "hit", subject, limit, policy, operation, cost)


@limits.command()
@_subject
@_limit_args
@_policy_option
@_operation_option
@_cost_option
@pass_context
def peek(
    ctx: Context,
    subject: str,
    limit: tuple[str, ...],
    policy: str | None,
    operation: str,
    cost: int,
) -> None:
    """Say whether a hit would pass, consuming nothing."""
    with errors_as_exit_codes():
        _check(ctx, "peek", subject, limit, policy, operation, cost)


@limits.command()
@_subject
@_limit_args
@_operation_option
@pass_context
def reset(ctx: Context, subject: str, limit: tuple[str, ...], operation: str) -> None:
    """Forget SUBJECT's state for LIMITs (none given: every limit and its ban)."""
    with errors_as_exit_codes():
        deleted = _limiter(ctx).reset(
            subject, list(limit) if limit else None, operation=operation
        )
        emit({"subject": subject, "deleted_keys": deleted})


@limits.command("set")
@click.argument("policy")
@click.argument("operation")
@click.argument("limit", nargs=-1)
@click.option("--remove", is_flag=True, help="Remove OPERATION from the policy.")
@pass_context
def set_(
    ctx: Context, policy: str, operation: str, limit: tuple[str, ...], remove: bool
) -> None:
    """Set the live limits of OPERATION (* = default) in POLICY.

    Every running instance applies the change within 1 s.
    """
    with errors_as_exit_codes():
        if remove == bool(limit):
            raise click.UsageError("give LIMIT arguments, or --remove")
        updated = _limiter(ctx).set_limits(
            policy, operation, None if remove else list(limit)
        )
        emit(updated.as_json())


@limits.command()
@click.argument("policy", required=False)
@pass_context
def show(ctx: Context, policy: str | None) -> None:
    """Show one stored policy, or every one (one JSON line each)."""
    with errors_as_exit_codes():
        limiter = _limiter(ctx)
        found: list[Policy] = (
            [limiter.policy(policy)] if policy else limiter.stored_policies()
        )
        for item in found:
            emit(item.as_json())


def _listing(
    ctx: Context, which: Listing, subjects: tuple[str, ...], remove: bool
) -> None:
    limiter = _limiter(ctx)
    if not subjects:
        emit({"list": which, "subjects": limiter.listed(which)})
        return
    for subject in subjects:
        if remove:
            if limiter.listing(subject) == which:
                limiter.unlist(subject)
        elif which == "allow":
            limiter.allow(subject)
        else:
            limiter.deny(subject)
        emit({"subject": subject, "list": limiter.listing(subject)})


@limits.command()
@click.argument("subjects", nargs=-1)
@click.option("--remove", is_flag=True, help="Take the SUBJECTS off the list.")
@pass_context
def allow(ctx: Context, subjects: tuple[str, ...], remove: bool) -> None:
    """Put SUBJECTS on the allow list (never limited); none given: show the list."""
    with errors_as_exit_codes():
        _listing(ctx, "allow", subjects, remove)


@limits.command()
@click.argument("subjects", nargs=-1)
@click.option("--remove", is_flag=True, help="Take the SUBJECTS off the list.")
@pass_context
def deny(ctx: Context, subjects: tuple[str, ...], remove: bool) -> None:
    """Put SUBJECTS on the deny list (always refused); none given: show the list."""
    with errors_as_exit_codes():
        _listing(ctx, "deny", subjects, remove)


@limits.command()
@click.argument("subject", required=False)
@click.option("--minutes", default=60, show_default=True, help="Minute buckets.")
@click.option("--days", default=7, show_default=True, help="Day buckets.")
@click.option("--top", default=10, show_default=True, help="Subjects in the top.")
@click.option("--day", help="Day of the top, YYYYMMDD (default: today, UTC).")
@pass_context
def usage(
    ctx: Context,
    subject: str | None,
    minutes: int,
    days: int,
    top: int,
    day: str | None,
) -> None:
    """SUBJECT's allowed and refused counts per operation, per minute and day;
    without SUBJECT, the subjects refused most."""
    with errors_as_exit_codes():
        limiter = _limiter(ctx)
        if subject is not None:
            emit(limiter.usage(subject, minutes=minutes, days=days))
            return
        ranked = limiter.top_refused(day=day, count=top)
        emit({"top_refused": [{"subject": s, "refused": n} for s, n in ranked]})
