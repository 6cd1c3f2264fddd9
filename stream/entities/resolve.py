"""Entity ids, and the resolver that maps the names records use to them.

An entity id is a string: an AWS ARN for a cloud resource (S3 buckets as ``arn:aws:s3:::NAME``),
``service:NAME`` for a service, ``k8s:pod/NAMESPACE/POD`` for a pod no service claims yet, or an id
from the asset file. The :class:`EntityResolver` holds what is learned at run time: asset aliases
(hostnames, endpoints, bucket or table names, pod-name prefixes), the reverse of ``exercised_via``,
and which pod belongs to which service (from trace resource attributes).
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache

from stream.models import Asset

SERVICE_PREFIX = "service:"
_S3_VIRTUAL_HOST = re.compile(
    r"^(?P<bucket>[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])\.s3[.\-](?:[a-z0-9\-]+\.)?amazonaws\.com$")
_SQS_URL = re.compile(r"^https?://(?:sqs\.)?(?P<region>[a-z0-9\-]+)\.(?:queue\.)?amazonaws\.com/(?P<account>\d{12})/(?P<name>[^/?#]+)")
_SQS_LEGACY_URL = re.compile(r"^https?://sqs\.(?P<region>[a-z0-9\-]+)\.amazonaws\.com/(?P<account>\d{12})/(?P<name>[^/?#]+)")
_POD_HASH_SUFFIX = re.compile(r"-[a-z0-9]{6,10}-[a-z0-9]{5}$|-[a-z0-9]{5}$|-\d+$")


def service_entity(name: str) -> str:
    return SERVICE_PREFIX + name


def is_service(entity: str) -> bool:
    return entity.startswith(SERVICE_PREFIX)


def s3_bucket_arn(bucket: str) -> str:
    return f"arn:aws:s3:::{bucket}"


def aws_arn(service: str, region: str | None, account: str | None, resource: str) -> str:
    return f"arn:aws:{service}:{region or ''}:{account or ''}:{resource}"


def dynamodb_table_arn(table: str, region: str | None, account: str | None) -> str:
    return table if table.startswith("arn:") else aws_arn("dynamodb", region, account, f"table/{table}")


def ec2_instance_arn(instance_id: str, region: str | None, account: str | None) -> str:
    return aws_arn("ec2", region, account, f"instance/{instance_id}")


def iam_arn(account: str | None, kind: str, name: str) -> str:
    """``kind`` is ``user`` or ``role``."""
    return f"arn:aws:iam::{account or ''}:{kind}/{name}"


POD_PREFIX = "k8s:pod/"


def pod_entity(namespace: str | None, pod: str) -> str:
    return f"{POD_PREFIX}{namespace or 'default'}/{pod}"


def pod_name(entity: str) -> str | None:
    """The pod name of a ``k8s:pod/NAMESPACE/POD`` entity id, else None."""
    return entity.rsplit("/", 1)[-1] if entity.startswith(POD_PREFIX) else None


def bucket_from_host(host: str) -> str | None:
    """The bucket of a virtual-hosted S3 address (``NAME.s3.REGION.amazonaws.com``), if it is one."""
    match = _S3_VIRTUAL_HOST.match(host.lower())
    return match.group("bucket") if match else None


def sqs_queue_arn(url: str) -> str | None:
    match = _SQS_URL.match(url) or _SQS_LEGACY_URL.match(url)
    if not match:
        return None
    return aws_arn("sqs", match.group("region"), match.group("account"), match.group("name"))


@lru_cache(maxsize=65536)
def is_public_address(address: str) -> bool:
    """True for a globally routable IP address: the caller came from the internet."""
    try:
        return ipaddress.ip_address(address.strip().strip("[]")).is_global
    except ValueError:
        return False


def deployment_of_pod(pod: str) -> str:
    """``payments-api-7d9f8c6b5-x2k4q`` -> ``payments-api``: strip ReplicaSet and pod hashes."""
    return _POD_HASH_SUFFIX.sub("", pod) or pod


class EntityResolver:
    """Names to entity ids, from the asset context and from what traces teach.

    Lookups are exact dictionary hits on lower-cased names, so resolving is cheap on the hot path.
    """

    def __init__(self) -> None:
        self.assets: dict[str, Asset] = {}
        self._aliases: dict[str, str] = {}
        self._pods: dict[str, str] = {}
        self._pods_of: dict[str, set[str]] = {}
        self._pod_seen: dict[str, float] = {}  # pod -> latest event time traces showed it
        self._exercised_by: dict[str, set[str]] = {}

    def add_asset(self, asset: Asset) -> None:
        previous = self.assets.get(asset.id)
        if previous is not None:
            for via in previous.exercised_via:
                self._exercised_by.get(via, set()).discard(asset.id)
        self.assets[asset.id] = asset
        self._aliases[asset.id.lower()] = asset.id
        for alias in asset.aliases:
            self._aliases[alias.lower()] = asset.id
        for via in asset.exercised_via:
            self._exercised_by.setdefault(via, set()).add(asset.id)

    def remove_asset(self, asset_id: str) -> None:
        """Forget an asset (a tombstone on the compacted asset topic)."""
        asset = self.assets.pop(asset_id, None)
        if asset is None:
            return
        for alias in (asset.id, *asset.aliases):
            if self._aliases.get(alias.lower()) == asset_id:
                del self._aliases[alias.lower()]
        for via in asset.exercised_via:
            self._exercised_by.get(via, set()).discard(asset_id)

    def learn_pod(self, pod: str, service: str, seen: float = float("inf")) -> bool:
        """Remember that ``pod`` runs ``service``, seen at event time ``seen``; True when this is new.

        Without a time the pod is kept until forgotten by hand (``hotpath inspect`` reads one run).
        """
        self._pod_seen[pod] = max(seen, self._pod_seen.get(pod, seen))
        previous = self._pods.get(pod)
        if previous == service:
            return False
        if previous is not None:
            self._forget_pod_of(previous, pod)
        self._pods[pod] = service
        self._pods_of.setdefault(service, set()).add(pod)
        return True

    def prune_pods(self, before: float) -> int:
        """Forget the pods no trace has shown since ``before`` (pods come and go); returns how many."""
        gone = [pod for pod, seen in self._pod_seen.items() if seen < before]
        for pod in gone:
            del self._pod_seen[pod]
            self._forget_pod_of(self._pods.pop(pod), pod)
        return len(gone)

    def _forget_pod_of(self, service: str, pod: str) -> None:
        pods = self._pods_of[service]
        pods.discard(pod)
        if not pods:
            del self._pods_of[service]

    def pods_of(self, service: str) -> set[str]:
        """The pod names traces have shown running ``service``."""
        return self._pods_of.get(service, set())

    def resolve(self, name: str) -> str | None:
        """The entity an alias names (hostname, endpoint, bucket, table ...), if any asset claims it."""
        return self._aliases.get(name.lower())

    def service_of_pod(self, pod: str) -> str | None:
        """The service a pod belongs to: learned from traces, else an asset alias, else its deployment."""
        known = self._pods.get(pod)
        if known is not None:
            return known
        by_alias = self.resolve(pod)
        if by_alias is not None:
            return by_alias
        deployment = deployment_of_pod(pod)
        by_prefix = self.resolve(deployment)
        if by_prefix is not None:
            return by_prefix
        candidate = service_entity(deployment)
        if candidate in self.assets or candidate in self._pods_of:
            return candidate
        return None

    def asset(self, entity: str) -> Asset | None:
        return self.assets.get(entity)

    def lies_on_paths(self, entity: str) -> bool:
        """True for the entities exposure paths are traced through and to, whose call edges every worker keeps:
        services, assets, and what an asset is exercised via. Other resources keep their callers in their
        own state only, so names an attacker makes up cost no replicated memory."""
        return is_service(entity) or entity in self.assets or bool(self._exercised_by.get(entity))

    def exercised_by(self, entity: str) -> set[str]:
        """Assets whose findings are exercised by traffic on ``entity`` (reverse of ``exercised_via``)."""
        return self._exercised_by.get(entity, set())
