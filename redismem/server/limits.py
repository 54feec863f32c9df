"""Connection limits: per process, per subject and per client address."""

from __future__ import annotations

from collections import Counter

PROCESS, SUBJECT, ADDRESS = "process", "subject", "address"


class ConnectionLimits:
    """Counts open connections and refuses the one that would exceed a limit."""

    def __init__(self, total: int, per_subject: int, per_address: int) -> None:
        self.total_limit = total
        self.subject_limit = per_subject
        self.address_limit = per_address
        self.total = 0
        self.by_subject: Counter[str] = Counter()
        self.by_address: Counter[str] = Counter()

    def admit(self, subject: str, address: str) -> str | None:
        """Count a new connection, or return the name of the limit it exceeds."""
        if self.total >= self.total_limit:
            return PROCESS
        if self.by_subject[subject] >= self.subject_limit:
            return SUBJECT
        if self.by_address[address] >= self.address_limit:
            return ADDRESS
        self.total += 1
        self.by_subject[subject] += 1
        self.by_address[address] += 1
        return None

    def release(self, subject: str, address: str) -> None:
        """Forget a closed connection that admit() counted."""
        self.total -= 1
        for counts, name in ((self.by_subject, subject), (self.by_address, address)):
            counts[name] -= 1
            if counts[name] <= 0:
                del counts[name]
