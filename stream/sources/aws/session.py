"""boto3 sessions for every account and region a connector reads, and errors a user can act on.

Credentials come from boto3's standard chain only (environment, profile, SSO, instance or task role).
Other accounts are read by assuming a role in each (``--role-arn``, with ``--external-id`` when the
role's trust policy asks for one); roles are assumed again on every pass, so a long-running poll never
holds expired credentials. Every client retries throttling in botocore's adaptive mode, and
``--endpoint-url`` / ``HOTPATH_AWS_ENDPOINT_URL`` sends every call to one endpoint (moto in tests).
boto3 comes with the ``aws`` extra; the ``hotpath aws`` commands import this package only when they run.

A failed call becomes one :class:`AwsError` line; access denied names the IAM action to grant, e.g.
"access denied: the credentials lack securityhub:GetFindings in 123456789012/eu-west-1".
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from stream.settings import ConfigError, Settings

RETRIES = {"mode": "adaptive", "max_attempts": 10}
ROLE_SESSION_NAME = "hotpath"
_ROLE_ARN = re.compile(r"^arn:aws[a-z\-]*:iam::(?P<account>\d{12}):role/.+$")
# IAM action prefixes that differ from the API's signing name.
_IAM_PREFIX = {"tagging": "tag"}
_DENIED = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError",
                     "UnauthorizedAccess"})
# 403s that mean "who are you", not "you may not": the fix is different, so is the message.
_BAD_CREDENTIALS = frozenset({"InvalidClientTokenId", "UnrecognizedClientException", "ExpiredToken",
                              "ExpiredTokenException", "SignatureDoesNotMatch", "InvalidSignatureException",
                              "IncompleteSignature", "AuthFailure", "InvalidAccessKeyId"})


class AwsError(Exception):
    """A call to AWS failed. The message is one line naming the action and where it ran."""


def report(line: str) -> None:
    """Progress and errors: one line each on stderr, flushed at once so long pulls show their pace."""
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class AccountOptions:
    """Which accounts and regions a connector reads, and where its calls go (every ``hotpath aws`` command's)."""

    regions: tuple[str, ...] = ()  # empty: the standard chain's region
    role_arns: tuple[str, ...] = ()  # empty: the account of the standard chain's credentials
    external_id: str | None = None
    endpoint_url: str | None = None


@dataclass
class Scope:
    """One account in one region: where calls go, and what their errors name.

    All scopes share one boto3 session, so service models load once however many accounts are read;
    an assumed role's credentials are handed to each client instead.
    """

    account: str
    region: str
    session: Any
    endpoint_url: str | None = None
    credentials: dict[str, str] = field(default_factory=dict, repr=False)
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def label(self) -> str:
        return f"{self.account}/{self.region}" if self.account else self.region

    def client(self, service: str):
        if service not in self._clients:
            self._clients[service] = self.session.client(
                service, region_name=self.region, endpoint_url=self.endpoint_url, config=Config(retries=RETRIES),
                **self.credentials)
        return self._clients[service]

    def call(self, service: str, operation: str, **kwargs: Any) -> dict[str, Any]:
        client = self.client(service)
        try:
            return getattr(client, operation)(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise AwsError(describe_failure(client, operation, exc, self.label)) from None

    def pages(self, service: str, operation: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Every page of a paginated operation, with failures turned into :class:`AwsError`."""
        client = self.client(service)
        try:
            yield from client.get_paginator(operation).paginate(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise AwsError(describe_failure(client, operation, exc, self.label)) from None

    def items(self, service: str, operation: str, key: str, **kwargs: Any) -> Iterator[Any]:
        """The ``key`` list of every page, one item at a time."""
        for page in self.pages(service, operation, **kwargs):
            yield from page.get(key, [])


def iam_action(client, operation: str) -> str:
    """``securityhub:GetFindings`` for ``get_findings`` on a Security Hub client."""
    prefix = client.meta.service_model.signing_name
    api_name = client.meta.method_to_api_mapping.get(operation, operation)
    return f"{_IAM_PREFIX.get(prefix, prefix)}:{api_name}"


def describe_failure(client, operation: str, exc: Exception, where: str) -> str:
    """One line saying what failed and what to do about it."""
    action = iam_action(client, operation)
    if isinstance(exc, NoCredentialsError):
        return ("no AWS credentials in the standard chain (AWS_PROFILE, AWS_ACCESS_KEY_ID, SSO login, "
                "instance or task role)")
    if not isinstance(exc, ClientError):
        return f"{action} failed in {where}: {exc}"
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code in _BAD_CREDENTIALS:
        return f"the credentials were rejected ({code}) calling {action} in {where}: check the standard chain"
    if code in _DENIED or status == 403:
        return f"access denied: the credentials lack {action} in {where}"
    message = " ".join(str(error.get("Message", "")).split())[:200]
    return f"{action} failed in {where}: {code}: {message}"


@dataclass(frozen=True)
class Account:
    """One AWS account and the credentials that read it."""

    id: str
    session: Any
    endpoint_url: str | None
    credentials: dict[str, str] = field(default_factory=dict, repr=False)  # an assumed role's; else the chain's

    def scope(self, region: str) -> Scope:
        return Scope(self.id, region, self.session, self.endpoint_url, self.credentials)


@dataclass(frozen=True)
class Targets:
    """The accounts and regions one pass reads; global services (S3, IAM) use the first region.

    ``unreachable`` says, one line each, which ``--role-arn`` accounts could not be assumed.
    """

    accounts: list[Account]
    regions: list[str]
    unreachable: list[str] = field(default_factory=list)


def open_targets(options: AccountOptions, settings: Settings) -> Targets:
    """Each role's account (assumed now), else the caller's own, in the regions the options name."""
    endpoint_url = options.endpoint_url or settings.aws_endpoint_url
    base = boto3.Session()
    names = _regions(options.regions, base.region_name)
    caller = Scope("", names[0], base, endpoint_url)
    if not options.role_arns:
        identity = caller.call("sts", "get_caller_identity")
        return Targets([Account(identity["Account"], base, endpoint_url)], names)
    targets = Targets([], names)
    for role_arn in options.role_arns:
        try:
            targets.accounts.append(_assume(caller, role_arn, options.external_id))
        except AwsError as exc:
            targets.unreachable.append(str(exc))
    return targets


def _regions(given: tuple[str, ...], default: str | None) -> list[str]:
    if given:
        return list(dict.fromkeys(given))
    if default:
        return [default]
    raise ConfigError("no AWS region: pass --regions or set AWS_REGION")


def _assume(caller: Scope, role_arn: str, external_id: str | None) -> Account:
    match = _ROLE_ARN.match(role_arn)
    if match is None:
        raise ConfigError(f"--role-arn {role_arn!r} is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)")
    request = {"RoleArn": role_arn, "RoleSessionName": ROLE_SESSION_NAME}
    if external_id:
        request["ExternalId"] = external_id
    try:
        credentials = caller.call("sts", "assume_role", **request)["Credentials"]
    except AwsError as exc:
        raise AwsError(f"{exc} (assuming {role_arn}: check its trust policy and --external-id)") from None
    return Account(match.group("account"), caller.session, caller.endpoint_url, {
        "aws_access_key_id": credentials["AccessKeyId"],
        "aws_secret_access_key": credentials["SecretAccessKey"],
        "aws_session_token": credentials["SessionToken"],
    })
