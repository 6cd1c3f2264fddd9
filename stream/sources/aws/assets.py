"""``hotpath aws sync-assets``: asset context (:class:`stream.models.Asset`) built from the AWS account itself.

For every account and region it collects:

- each resource's tags from the Resource Groups Tagging API, mapped to asset fields by
  ``HOTPATH_AWS_TAG_KEYS`` and ``--tag-key FIELD=KEY`` (defaults: ``hotpath:service``, ``criticality``,
  ``data-classification``, ``owner``, ``environment``, ``hotpath:internet-facing``; matched ignoring case);
- the names traces use for a resource, as aliases: S3 bucket names, RDS instance and cluster endpoint
  addresses, DynamoDB table names, SQS queue URLs and names, load balancer DNS names, EC2 DNS names;
- security groups' ``exercised_via``: the network interfaces (an instance's interfaces count as the
  instance), RDS instances and clusters and load balancers that use them, and the services those run;
- IAM roles' ``exercised_via``: the instances that run with them through an instance profile, their
  services, and the role's own service tag (the service that assumes it).

A load balancer's scheme gives ``internet_facing`` unless a tag says otherwise. Each asset is published
keyed by its id to the compacted assets topic when it differs from the value there, or all go to
``--out FILE`` as ``{"assets": [...]}``. Resources deleted from AWS are not removed from the topic:
that needs a tombstone, which the worker does not read as a removal yet.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import orjson

from stream.entities.resolve import (
    aws_arn,
    dynamodb_table_arn,
    ec2_instance_arn,
    s3_bucket_arn,
    service_entity,
)
from stream.models import Asset, AssetTags, Criticality, DataClassification
from stream.settings import ConfigError, Settings
from stream.sources.aws import ASSET_FIELDS
from stream.sources.aws.cursor import latest_values
from stream.sources.aws.publish import TopicSink
from stream.sources.aws.session import Account, AwsError, Scope, Targets, report

_TRUE, _FALSE = {"true", "yes", "1"}, {"false", "no", "0"}
_CHOICES = {"criticality": get_args(Criticality), "data_classification": get_args(DataClassification)}


def tag_keys(settings: Settings, overrides: Iterable[str]) -> dict[str, str]:
    """Asset field -> tag key: the defaults, then ``HOTPATH_AWS_TAG_KEYS`` one by one, then ``--tag-key``."""
    keys = {**Settings.model_fields["aws_tag_keys"].default, **settings.aws_tag_keys}
    for override in overrides:
        name, sep, key = override.partition("=")
        if not sep:
            raise ConfigError(f"--tag-key {override!r}: expected FIELD=KEY")
        keys[name.strip()] = key.strip()
    unknown = sorted(set(keys) - set(ASSET_FIELDS))
    if unknown:
        raise ConfigError(f"HOTPATH_AWS_TAG_KEYS / --tag-key: unknown asset field {unknown[0]!r} "
                          f"(fields: {', '.join(ASSET_FIELDS)})")
    return {name: key for name, key in keys.items() if key}


@dataclass
class Inventory:
    """What one account holds, as collected; :func:`build_assets` turns it into assets."""

    tags: dict[str, dict[str, str]] = field(default_factory=dict)
    aliases: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    guards: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # SG -> what uses it
    instance_profiles: dict[str, str] = field(default_factory=dict)  # instance ARN -> instance profile ARN
    profile_roles: dict[str, set[str]] = field(default_factory=dict)  # instance profile ARN -> role ARNs
    internet_facing: dict[str, bool] = field(default_factory=dict)

    def alias(self, arn: str, *names: str | None) -> None:
        self.aliases[arn].update(name for name in names if name)

    def guarded(self, scope: Scope, user: str, group_ids: Iterable[str]) -> None:
        for group_id in group_ids:
            self.guards[aws_arn("ec2", scope.region, scope.account, f"security-group/{group_id}")].add(user)


def _exercised_through_others(arn: str) -> bool:
    """Security groups and roles see no traffic themselves: their own service tag names who exercises them."""
    return ":security-group/" in arn or (arn.startswith("arn:aws:iam::") and ":role/" in arn)


def build_assets(inventory: Inventory, keys: dict[str, str], warn: Callable[[str], None] = report) -> list[Asset]:
    """The assets an inventory describes, sorted by id; resources with nothing worth saying are left out."""
    runs_as: defaultdict[str, set[str]] = defaultdict(set)
    for instance, profile in inventory.instance_profiles.items():
        for role in inventory.profile_roles.get(profile, ()):
            runs_as[role].add(instance)
    used_by = {**inventory.guards, **runs_as}
    fields = {arn: tag_fields(arn, tags, keys, warn) for arn, tags in inventory.tags.items()}
    assets = []
    for arn in sorted(set(fields) | set(inventory.aliases) | set(used_by) | set(inventory.internet_facing)):
        own = dict(fields.get(arn, {}))
        service = own.pop("service", None)
        users = used_by.get(arn, set())
        via = set(users) | {service_entity(fields[user]["service"]) for user in users
                            if "service" in fields.get(user, {})}
        if service and _exercised_through_others(arn):
            via.add(service_entity(service))
        own.setdefault("internet_facing", inventory.internet_facing.get(arn))
        aliases = sorted(inventory.aliases.get(arn, ()))
        if not (aliases or service or via or any(value is not None for value in own.values())):
            continue
        assets.append(Asset(id=arn, aliases=aliases, service=service, tags=AssetTags(**own),
                            exercised_via=sorted(via)))
    return assets


def tag_fields(arn: str, tags: dict[str, str], keys: dict[str, str], warn: Callable[[str], None]) -> dict[str, Any]:
    """Asset fields from one resource's tags; a value the field cannot take is reported and skipped."""
    by_key = {key.lower(): value.strip() for key, value in tags.items()}
    found: dict[str, Any] = {}
    for name, key in keys.items():
        value = by_key.get(key.lower())
        if not value:
            continue
        if name == "internet_facing":
            if value.lower() in _TRUE | _FALSE:
                found[name] = value.lower() in _TRUE
            else:
                warn(f"assets: {arn}: tag {key}={value!r} is not true or false; ignored")
        elif name in _CHOICES:
            if value.lower() in _CHOICES[name]:
                found[name] = value.lower()
            else:
                warn(f"assets: {arn}: tag {key}={value!r} is not one of {', '.join(_CHOICES[name])}; ignored")
        else:
            found[name] = value
    return found


def asset_document(asset: Asset) -> dict[str, Any]:
    """The asset-file form of an asset: unset tags left out."""
    return asset.model_dump(mode="json", exclude={"kind"}, exclude_none=True)


# Collectors: each reads one kind of resource in one scope into the inventory and returns how many it saw.

def collect_tags(scope: Scope, inventory: Inventory) -> int:
    mappings = list(scope.items("resourcegroupstaggingapi", "get_resources", "ResourceTagMappingList",
                                ResourcesPerPage=100))
    for mapping in mappings:
        tags = {tag["Key"]: tag["Value"] for tag in mapping.get("Tags", [])}
        inventory.tags.setdefault(mapping["ResourceARN"], {}).update(tags)
    return len(mappings)


def collect_databases(scope: Scope, inventory: Inventory) -> int:
    databases = [(db["DBInstanceArn"], db, [(db.get("Endpoint") or {}).get("Address")])
                 for db in scope.items("rds", "describe_db_instances", "DBInstances")]
    databases += [(cluster["DBClusterArn"], cluster, [cluster.get("Endpoint"), cluster.get("ReaderEndpoint")])
                  for cluster in scope.items("rds", "describe_db_clusters", "DBClusters")]
    for arn, database, addresses in databases:
        inventory.alias(arn, *addresses)
        inventory.guarded(scope, arn, [group["VpcSecurityGroupId"] for group in database.get("VpcSecurityGroups", [])])
    return len(databases)


def collect_tables(scope: Scope, inventory: Inventory) -> int:
    names = list(scope.items("dynamodb", "list_tables", "TableNames"))
    for name in names:
        inventory.alias(dynamodb_table_arn(name, scope.region, scope.account), name)
    return len(names)


def collect_queues(scope: Scope, inventory: Inventory) -> int:
    urls = list(scope.items("sqs", "list_queues", "QueueUrls"))
    for url in urls:
        name = url.rstrip("/").rsplit("/", 1)[-1]
        inventory.alias(aws_arn("sqs", scope.region, scope.account, name), url, name)
    return len(urls)


def collect_load_balancers(scope: Scope, inventory: Inventory) -> int:
    balancers = [(lb["LoadBalancerArn"], lb) for lb in scope.items("elbv2", "describe_load_balancers", "LoadBalancers")]
    for lb in scope.items("elb", "describe_load_balancers", "LoadBalancerDescriptions"):
        name = f"loadbalancer/{lb['LoadBalancerName']}"
        balancers.append((aws_arn("elasticloadbalancing", scope.region, scope.account, name), lb))
    for arn, lb in balancers:
        inventory.alias(arn, lb.get("DNSName"))
        inventory.guarded(scope, arn, lb.get("SecurityGroups", []))
        if lb.get("Scheme"):
            inventory.internet_facing[arn] = lb["Scheme"] == "internet-facing"
    return len(balancers)


def collect_instances(scope: Scope, inventory: Inventory) -> int:
    instances = [instance for reservation in scope.items("ec2", "describe_instances", "Reservations")
                 for instance in reservation.get("Instances", [])
                 if (instance.get("State") or {}).get("Name") != "terminated"]
    for instance in instances:
        arn = ec2_instance_arn(instance["InstanceId"], scope.region, scope.account)
        inventory.alias(arn, instance.get("PrivateDnsName"), instance.get("PublicDnsName"))
        profile = (instance.get("IamInstanceProfile") or {}).get("Arn")
        if profile:
            inventory.instance_profiles[arn] = profile
    return len(instances)


def collect_interfaces(scope: Scope, inventory: Inventory) -> int:
    interfaces = list(scope.items("ec2", "describe_network_interfaces", "NetworkInterfaces"))
    for interface in interfaces:
        instance_id = (interface.get("Attachment") or {}).get("InstanceId")
        user = (ec2_instance_arn(instance_id, scope.region, scope.account) if instance_id else
                aws_arn("ec2", scope.region, scope.account, f"network-interface/{interface['NetworkInterfaceId']}"))
        inventory.guarded(scope, user, [group["GroupId"] for group in interface.get("Groups", [])])
    return len(interfaces)


def collect_buckets(scope: Scope, inventory: Inventory) -> int:
    buckets = list(scope.items("s3", "list_buckets", "Buckets"))
    for bucket in buckets:
        inventory.alias(s3_bucket_arn(bucket["Name"]), bucket["Name"])
    return len(buckets)


def collect_roles(scope: Scope, inventory: Inventory) -> int:
    for profile in scope.items("iam", "list_instance_profiles", "InstanceProfiles"):
        inventory.profile_roles[profile["Arn"]] = {role["Arn"] for role in profile.get("Roles", [])}
    # AWS manages service-linked roles and nobody tags them: skip a ListRoleTags call each.
    roles = [role for role in scope.items("iam", "list_roles", "Roles")
             if not role.get("Path", "/").startswith("/aws-service-role/")]
    for role in roles:
        role_tags = scope.items("iam", "list_role_tags", "Tags", RoleName=role["RoleName"])
        tags = {tag["Key"]: tag["Value"] for tag in role_tags}
        if tags:
            inventory.tags.setdefault(role["Arn"], {}).update(tags)
    return len(roles)


REGIONAL: tuple[tuple[str, Callable[[Scope, Inventory], int]], ...] = (
    ("tagged resources", collect_tags), ("databases", collect_databases), ("tables", collect_tables),
    ("queues", collect_queues), ("load balancers", collect_load_balancers), ("instances", collect_instances),
    ("network interfaces", collect_interfaces),
)
GLOBAL: tuple[tuple[str, Callable[[Scope, Inventory], int]], ...] = (
    ("buckets", collect_buckets), ("roles", collect_roles),
)


def collect_account(account: Account, regions: list[str]) -> Inventory:
    """Everything one account holds in ``regions``; global services (S3, IAM) are read once."""
    inventory = Inventory()
    for region in regions:
        scope = account.scope(region)
        collectors = REGIONAL + GLOBAL if region == regions[0] else REGIONAL
        counts = [f"{noun} {collect(scope, inventory)}" for noun, collect in collectors]
        report(f"assets {scope.label}: {', '.join(counts)}")
    return inventory


def publish_changed(settings: Settings, assets: list[Asset]) -> int:
    """Publish the assets whose value differs from the topic's current one; returns how many."""
    current = latest_values(settings, settings.topic_assets)
    sink = TopicSink(settings, settings.topic_assets)
    published = 0
    for asset in assets:
        document = asset_document(asset)
        if _same(current.get(asset.id.encode()), document):
            continue
        sink.send(asset.id, orjson.dumps(document))
        published += 1
    sink.confirm()
    return published


def _same(value: bytes | None, document: dict[str, Any]) -> bool:
    try:
        return value is not None and orjson.loads(value) == document
    except orjson.JSONDecodeError:
        return False


def write_asset_file(path: Path, assets: list[Asset]) -> None:
    """``{"assets": [...]}``, replaced atomically so the worker never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(orjson.dumps({"assets": [asset_document(asset) for asset in assets]},
                                     option=orjson.OPT_INDENT_2))
    os.replace(partial, path)


def collect_assets(targets: Targets, keys: dict[str, str]) -> tuple[list[Asset], list[str]]:
    """The assets of every account; and the accounts that could not be read, each reported."""
    assets: list[Asset] = []
    failed = []
    for account in targets.accounts:
        try:
            inventory = collect_account(account, targets.regions)
        except AwsError as exc:
            report(f"hotpath: {exc}")
            failed.append(account.id)
            continue
        assets += build_assets(inventory, keys)
    return assets, failed
