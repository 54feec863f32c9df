"""Checks on subjects and operation names, run before anything reaches Redis.

A subject becomes the hash tag ``{<subject>}`` of its keys, so it may not hold
braces; the allowed characters also need no escaping in a Redis glob.
"""

from __future__ import annotations

import re

from redismem.errors import InvalidLimit, InvalidSubject

MAX_SUBJECT_LENGTH = 256

_SUBJECT_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-.:/@+=~%]*")
_OPERATION_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-.]{0,63}")


def check_subject(subject: object) -> str:
    """Return ``subject`` if it can name a rate-limit subject, else raise."""
    if not isinstance(subject, str):
        raise InvalidSubject(subject, "must be a string")
    if not subject:
        raise InvalidSubject(subject, "must not be empty")
    if len(subject) > MAX_SUBJECT_LENGTH:
        raise InvalidSubject(subject, f"longer than {MAX_SUBJECT_LENGTH} characters")
    if not _SUBJECT_RE.fullmatch(subject):
        raise InvalidSubject(
            subject,
            "use only letters, digits and _ - . : / @ + = ~ %, "
            "starting with a letter, digit or _",
        )
    return subject


def check_operation(operation: object) -> str:
    """Return ``operation`` if it can name an operation (or ``*``), else raise."""
    if operation == "*":
        return operation
    if not isinstance(operation, str) or not _OPERATION_RE.fullmatch(operation):
        raise InvalidSubject(
            operation,
            "an operation is 1-64 of letters, digits, _ . -, or * for the default",
        )
    return operation


def check_cost(cost: object, *, minimum: int = 1) -> int:
    """Return ``cost`` if it is a whole number of units >= ``minimum``."""
    if isinstance(cost, bool) or not isinstance(cost, int) or cost < minimum:
        raise InvalidLimit(f"cost={cost!r}", f"cost must be an integer >= {minimum}")
    if cost > 10**12:
        raise InvalidLimit(f"cost={cost!r}", "cost must be at most 10**12")
    return cost
