"""Who is calling, and which namespaces they may read and write.

Two kinds of credentials, both from the ``Authorization: Bearer`` header (or
``X-API-Key``, or the ``access_token`` query parameter for browsers, which
cannot set headers on WebSocket and EventSource requests):

* signed tokens (JWT, HS256 with a shared secret or RS256 with a public key)
  whose ``sub`` names the subject and whose ``ns`` claim holds
  ``{"read": [patterns], "write": [patterns]}``; ``exp`` is required;
* static API keys from configuration, each with a subject and the same grants.

A refusal carries a stable code and a reason that names no secret.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt

from redismem.errors import InvalidNamespace, RedisMemError
from redismem.server.patterns import Pattern, parse_pattern

logger = logging.getLogger(__name__)

#: Refusal codes; the first five answer HTTP 401, ``forbidden`` 403.
AUTH_MISSING = "auth_missing"
AUTH_MALFORMED = "auth_malformed"
AUTH_EXPIRED = "auth_expired"
AUTH_BAD_SIGNATURE = "auth_bad_signature"
AUTH_INVALID = "auth_invalid"
FORBIDDEN = "forbidden"

GRANTS_CLAIM = "ns"


class AuthError(RedisMemError):
    """Credentials were refused; ``code`` is one of the codes above."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason

    @property
    def status(self) -> int:
        """The HTTP status for this refusal."""
        return 403 if self.code == FORBIDDEN else 401


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a subject and its read and write patterns."""

    subject: str
    read: tuple[Pattern, ...]
    write: tuple[Pattern, ...]

    def can_read(self, pattern: Pattern) -> bool:
        """Whether every namespace under ``pattern`` may be read."""
        return any(grant.covers(pattern) for grant in self.read)

    def can_write(self, namespace: str) -> bool:
        """Whether ``namespace`` may be written."""
        return any(grant.matches(namespace) for grant in self.write)

    def require_read(self, pattern: Pattern) -> None:
        """Raise AuthError(forbidden) unless ``pattern`` may be read."""
        if not self.can_read(pattern):
            raise AuthError(FORBIDDEN, f"no read grant covers {pattern.text!r}")

    def require_write(self, namespace: str) -> None:
        """Raise AuthError(forbidden) unless ``namespace`` may be written."""
        if not self.can_write(namespace):
            raise AuthError(FORBIDDEN, f"no write grant covers {namespace!r}")


ANONYMOUS = Principal("anonymous", (parse_pattern("*"),), (parse_pattern("*"),))


@dataclass
class AuthConfig:
    """Where credentials are checked against.

    ``api_keys`` maps each key to ``{"subject": ..., "read": [...],
    "write": [...]}``. ``enabled=False`` (``--no-auth``) lets every caller in
    as ``anonymous`` with every right.
    """

    enabled: bool = True
    jwt_secret: str | None = None
    jwt_public_key: str | None = None
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    api_keys: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    leeway_seconds: float = 0.0


def load_api_keys(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read API keys from a JSON file: ``{"<key>": {"subject": ..., ...}}``."""
    loaded = json.loads(Path(path).read_text())
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: expected an object of API keys")
    return loaded


class Authenticator:
    """Turns presented credentials into a Principal, or refuses them."""

    def __init__(self, config: AuthConfig) -> None:
        self.config = config
        # Keys are kept only as digests, so a lookup compares digests and the
        # keys themselves never sit in a long-lived dict.
        try:
            self._keys = {
                _digest(key): _principal(entry.get("subject"), entry, "API key")
                for key, entry in config.api_keys.items()
            }
        except AuthError as exc:
            raise ValueError(f"bad API key configuration: {exc.reason}") from None

    def authenticate(self, credential: str | None) -> Principal:
        """The caller presenting ``credential``; raises AuthError if refused."""
        if not self.config.enabled:
            return ANONYMOUS
        if not credential:
            raise AuthError(AUTH_MISSING, "no credentials presented")

        principal = self._keys.get(_digest(credential))
        if principal is not None:
            return principal
        if credential.count(".") != 2:
            raise AuthError(AUTH_MALFORMED, "neither a known API key nor a JWT")
        return self._verify_jwt(credential)

    def _verify_jwt(self, token: str) -> Principal:
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
        except jwt.DecodeError:
            raise AuthError(AUTH_MALFORMED, "the token cannot be decoded") from None

        key = self._key_for(algorithm)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[str(algorithm)],
                audience=self.config.jwt_audience,
                issuer=self.config.jwt_issuer,
                leeway=self.config.leeway_seconds,
                options={"require": ["exp", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError(AUTH_EXPIRED, "the token has expired") from None
        except jwt.InvalidSignatureError:
            raise AuthError(
                AUTH_BAD_SIGNATURE, "signature verification failed"
            ) from None
        except jwt.DecodeError:
            raise AuthError(AUTH_MALFORMED, "the token cannot be decoded") from None
        except jwt.InvalidTokenError as exc:
            raise AuthError(AUTH_INVALID, str(exc)) from None

        return _principal(claims.get("sub"), claims.get(GRANTS_CLAIM), "token")

    def _key_for(self, algorithm: object) -> Any:
        if algorithm == "HS256" and self.config.jwt_secret:
            return self.config.jwt_secret
        if algorithm == "RS256" and self.config.jwt_public_key:
            return self.config.jwt_public_key
        raise AuthError(AUTH_INVALID, f"algorithm {algorithm!r} is not accepted")


def credential_from(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The credential a request presents, from its headers or query string."""
    authorization = headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return headers.get("x-api-key") or query.get("access_token") or None


def _principal(subject: object, grants: object, source: str) -> Principal:
    if not isinstance(subject, str) or not subject:
        raise AuthError(AUTH_INVALID, f"the {source} names no subject")
    if not isinstance(grants, Mapping):
        raise AuthError(AUTH_INVALID, f"the {source} carries no namespace grants")
    return Principal(
        subject,
        _patterns(grants.get("read", ()), source),
        _patterns(grants.get("write", ()), source),
    )


def _patterns(texts: object, source: str) -> tuple[Pattern, ...]:
    if isinstance(texts, str) or not isinstance(texts, Iterable):
        raise AuthError(AUTH_INVALID, f"the {source}'s grants must be lists")
    try:
        return tuple(parse_pattern(text) for text in texts)
    except InvalidNamespace as exc:
        raise AuthError(AUTH_INVALID, f"the {source} has a bad grant: {exc}") from None


def _digest(credential: str) -> bytes:
    return hashlib.sha256(credential.encode()).digest()
