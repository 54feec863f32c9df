"""Rate limiting: four atomic Lua algorithms on Redis time, shared by every
instance that uses the same Redis.

``RateLimiter`` (sync; ``redismem.aio.RateLimiter`` for asyncio) hits, peeks,
refunds and resets limits given as ``Limit`` objects or notation such as
``token_bucket:10/s,burst=50``; ``RateLimitedStore`` puts a policy in front of
a ``MemoryStore``; ``rate_limit_headers`` and ``RateLimitMiddleware`` serve HTTP.
"""

from redismem.limiter.decision import Decision
from redismem.limiter.http import RateLimitMiddleware, rate_limit_headers
from redismem.limiter.limiter import RateLimiter
from redismem.limiter.notation import Limit, parse_limit, parse_limits
from redismem.limiter.policies import Policy
from redismem.limiter.settings import Backoff, UsageRetention

__all__ = [
    "Backoff",
    "Decision",
    "Limit",
    "Policy",
    "RateLimitMiddleware",
    "RateLimiter",
    "UsageRetention",
    "parse_limit",
    "parse_limits",
    "rate_limit_headers",
]
