"""SASL/OAUTHBEARER tokens for both Kafka clients: AWS MSK IAM, a token file, or unsecured test tokens.

One ``OAuthTokens`` per client keeps the current token and fetches a new one shortly before it expires.
confluent-kafka asks for tokens through its ``oauth_cb`` (a synchronous callback returning the token and
its expiry in seconds), aiokafka through an ``AbstractTokenProvider`` whose ``token()`` is a coroutine:
both are adapters over the same cache. Tokens are secrets: they are never logged or put into a repr.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from stream.redact import mask
from stream.settings import ConfigError, Settings

log = logging.getLogger("hotpath.oauth")

# Fetch a fresh token this long before the current one expires, so no connection presents a stale one.
REFRESH_MARGIN_S = 60.0
# An unsecured test token lives an hour; a file token whose expiry cannot be read is re-read this often.
UNSECURED_LIFETIME_S = 3600.0
FILE_TOKEN_RECHECK_S = 300.0
# A token file larger than this is not a token (a JWT is a few kB).
MAX_TOKEN_FILE_BYTES = 64 * 1024
# RFC 6750's b64token: what a bearer token may consist of (a JWT, an opaque token).
BEARER_TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*")


class TokenError(Exception):
    """No token could be had. The message is one line and never contains the token."""


@dataclass(frozen=True)
class Token:
    value: str = field(repr=False)
    expires_at: float
    """Unix time in seconds."""
    principal: str


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def unsecured_token(principal: str, now: float, lifetime_s: float = UNSECURED_LIFETIME_S) -> Token:
    """An unsigned JWS (``alg: none``) as Kafka's unsecured OAUTHBEARER validator accepts: test brokers only."""
    header = _b64url(orjson.dumps({"alg": "none"}))
    claims = {"sub": principal, "iat": int(now), "exp": int(now + lifetime_s)}
    return Token(f"{header}.{_b64url(orjson.dumps(claims))}.", int(now + lifetime_s), principal)


def jwt_claims(token: str) -> dict:
    """The claims of a compact JWS, unverified (the broker verifies); {} when it is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        claims = orjson.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def file_token(path: Path, now: float) -> Token:
    """The token a sidecar or a projected volume keeps in ``path``; its expiry from the JWT ``exp`` claim."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_TOKEN_FILE_BYTES + 1)
    except OSError as exc:
        raise TokenError(f"cannot read the OAUTHBEARER token file {path}: {exc.strerror}") from None
    value = raw.decode("ascii", errors="replace").strip()
    if not value or len(raw) > MAX_TOKEN_FILE_BYTES:
        raise TokenError(f"the OAUTHBEARER token file {path} holds no token of at most {MAX_TOKEN_FILE_BYTES} bytes")
    if not BEARER_TOKEN.fullmatch(value):
        # Anything else could end the SASL message early (RFC 7628 separates its fields with \x01).
        raise TokenError(f"the OAUTHBEARER token file {path} holds characters a bearer token cannot have")
    claims = jwt_claims(value)
    expires = claims.get("exp")
    if not isinstance(expires, int | float) or isinstance(expires, bool):
        expires = now + FILE_TOKEN_RECHECK_S
    elif expires <= now:
        raise TokenError(f"the OAUTHBEARER token in {path} expired {now - expires:.0f} s ago; "
                         f"is whatever refreshes it running?")
    subject = claims.get("sub")
    return Token(value, float(expires), subject if isinstance(subject, str) else "hotpath")


def msk_iam_token(region: str, session) -> Token:
    """An AWS MSK IAM token, signed by AWS's signer with the credentials of a botocore ``session``."""
    from aws_msk_iam_sasl_signer import MSKAuthTokenProvider
    from botocore.credentials import CredentialProvider
    from botocore.exceptions import BotoCoreError, ClientError

    class SessionCredentials(CredentialProvider):
        """The session's credential chain (environment, profile, web identity on EKS, instance role)."""

        METHOD = "hotpath-botocore-session"

        def load(self):
            return session.get_credentials()

    try:
        if session.get_credentials() is None:
            raise TokenError("no AWS credentials for MSK IAM: set them as boto3 finds them (environment, "
                             "profile, IRSA web identity, instance role)")
        value, expires_ms = MSKAuthTokenProvider.generate_auth_token_from_credentials_provider(
            region, SessionCredentials())
    except (BotoCoreError, ClientError) as exc:  # e.g. STS refused the web identity, or is unreachable
        raise TokenError(f"cannot sign an MSK IAM token: {mask(str(exc))}") from None
    return Token(value, expires_ms / 1000, "msk-iam")


class OAuthTokens:
    """The current token of one client, fetched anew ``REFRESH_MARGIN_S`` before it expires (thread-safe)."""

    def __init__(self, fetch: Callable[[], Token], clock: Callable[[], float] = time.time) -> None:
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._token: Token | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"

    def current(self) -> Token:
        """The cached token, fetched anew near its expiry; a failed refresh keeps one that is still valid."""
        with self._lock:
            now = self._clock()
            if self._token is None or self._token.expires_at - REFRESH_MARGIN_S <= now:
                try:
                    self._token = self._fetch()
                except TokenError as exc:
                    if self._token is None:  # start-up: the caller stops with this one line
                        raise
                    log.warning("OAUTHBEARER token refresh failed: %s", exc)
                    if self._token.expires_at <= now:
                        raise
            return self._token

    def confluent_callback(self, _oauthbearer_config: str) -> tuple[str, float, str, dict[str, str]]:
        """librdkafka's ``oauth_cb``: the token, its expiry (seconds since the epoch) and principal."""
        token = self.current()
        return token.value, token.expires_at, token.principal, {}

    def aiokafka_provider(self):
        """An aiokafka ``AbstractTokenProvider`` over this cache (what ``faust.OAuthCredentials`` takes)."""
        import asyncio

        from aiokafka.abc import AbstractTokenProvider

        tokens = self

        class Provider(AbstractTokenProvider):
            async def token(self) -> str:
                # The fetch may sign with AWS credentials or read a file: keep it off the event loop.
                token = await asyncio.get_running_loop().run_in_executor(None, tokens.current)
                return token.value

        return Provider()


def tokens_for(settings: Settings) -> OAuthTokens:
    """The token cache ``HOTPATH_SASL_OAUTH_PROVIDER`` names, for one client, holding its first token.

    The first token is fetched here so that a missing source (no file, no AWS credentials, an expired
    token) stops start-up with one line: librdkafka would only time out waiting for it.
    """
    tokens = _token_cache(settings)
    try:
        tokens.current()
    except TokenError as exc:
        raise ConfigError(str(exc)) from None
    return tokens


def _token_cache(settings: Settings) -> OAuthTokens:
    provider = settings.sasl_oauth_provider
    if provider == "msk_iam":
        import botocore.session

        session = botocore.session.Session()
        region = settings.sasl_oauth_aws_region or session.get_config_variable("region")
        if not region:
            raise ConfigError("HOTPATH_SASL_OAUTH_PROVIDER=msk_iam needs the cluster's region: "
                              "set HOTPATH_SASL_OAUTH_AWS_REGION (or AWS_REGION)")
        return OAuthTokens(lambda: msk_iam_token(region, session))
    if provider == "token_file":
        path = settings.sasl_oauth_token_file
        return OAuthTokens(lambda: file_token(path, time.time()))
    principal = settings.sasl_username or "hotpath"
    return OAuthTokens(lambda: unsecured_token(principal, time.time()))
