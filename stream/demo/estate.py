"""The demo's estate as plain data: a small fintech in one AWS account and one Kubernetes cluster.

Services, cloud resources with their asset context, and the CSPM findings that sit on them, each
with the outcome the story promises: the findings that live internet traffic exercises come first,
internal-only traffic gives a lower priority, and findings on resources nothing touches are held
however severe. One finding is an accepted risk: the public bucket the marketing website is served
from, which internet traffic exercises and which would escalate, muted by the demo's policy
(``policy.yaml``). :mod:`.records` turns this into wire formats and :mod:`.traffic` into spans.

``scale`` grows the estate: every unit adds untouched resources with findings, inventory assets
without findings, and (from the second unit on) internal services with their own table and bucket.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from stream.entities.resolve import aws_arn, dynamodb_table_arn, iam_arn, s3_bucket_arn, service_entity
from stream.models import Asset, AssetTags, Severity

ACCOUNT = "482916305771"
ACCOUNT_NAME = "finpay-prod"
REGION = "us-east-1"
CLUSTER = "finpay-prod"
COMPANY = "finpay"

# The id of the demo policy's mute rule (stream/demo/policy.yaml) that accepts the public website bucket.
MARKETING_SITE_RULE = "marketing-site-public-bucket"
Outcome = Literal["P1", "P2", "P3", "quiet", "held"]
Kind = Literal["bucket", "rds", "table", "queue", "role", "sg", "instance", "account"]
# Kubernetes' "safe" alphabet for generated name suffixes (no vowels, no look-alikes).
_K8S_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


@dataclass(frozen=True)
class Check:
    """One CSPM check, as its tool describes it (Prowler check metadata or a Security Hub control)."""

    tool: Literal["prowler", "securityhub"]
    id: str
    title: str
    severity: Severity
    resource_type: str
    service: str
    description: str
    status_detail: str = ""  # Prowler's status_extended, with {name} for the resource name
    config_rule: str = ""  # Security Hub: the AWS Config rule that evaluates the control


@dataclass(frozen=True)
class Resource:
    kind: Kind
    name: str
    arn: str
    asset: Asset | None = None
    details: dict = field(default_factory=dict)  # kind-specific facts the record builders show


@dataclass(frozen=True)
class Service:
    name: str
    namespace: str
    pod: str
    pod_ip: str
    asset: Asset

    @property
    def host(self) -> str:
        return f"{self.name}.{self.namespace}.svc.cluster.local"


@dataclass(frozen=True)
class PlannedFinding:
    check: Check
    resource: Resource
    outcome: Outcome
    internet: bool = False  # exercised by traffic that comes in from the internet
    accepted_by: str | None = None  # the demo policy's mute rule that accepts this risk (it escalates without it)


@dataclass(frozen=True)
class InternalService:
    """A service added by scale: internal callers only, reading its own table and bucket."""

    service: Service
    table: Resource
    bucket: Resource


@dataclass
class Estate:
    services: dict[str, Service]
    resources: dict[str, Resource]  # by role in the story: "statements", "ledger_db", ...
    findings: list[PlannedFinding]
    internal: list[InternalService]
    inventory: list[Asset]  # assets no finding and no traffic concerns (the rest of the account)
    unrelated_instance: Resource
    noise_pods: list[tuple[str, str]]  # (namespace, pod) of workloads with no findings

    @property
    def assets(self) -> list[Asset]:
        """Every asset entry, services first, in a stable order."""
        candidates = [s.asset for s in self.services.values()]
        candidates += [r.asset for r in self.resources.values()]
        for unit in self.internal:
            candidates += [unit.service.asset, unit.table.asset, unit.bucket.asset]
        candidates += [f.resource.asset for f in self.findings]
        unique = {asset.id: asset for asset in candidates if asset is not None}
        return list(unique.values()) + self.inventory


def _load_checks(path: Path) -> dict[str, dict[str, Check]]:
    """Each tool's catalog of checks (``checks.yaml``), by check id, in the file's order."""
    catalogs = yaml.safe_load(path.read_text())
    return {tool: {entry["id"]: Check(tool=tool, **entry) for entry in entries} for tool, entries in catalogs.items()}


_CATALOGS = _load_checks(Path(__file__).with_name("checks.yaml"))
PROWLER = _CATALOGS["prowler"]
SECURITY_HUB = _CATALOGS["securityhub"]

# Checks that can sit on each kind of untouched resource (tool catalog, check id).
_UNTOUCHED_CHECKS: dict[str, tuple[tuple[dict[str, Check], str], ...]] = {
    "bucket": ((PROWLER, "s3_bucket_public_access"), (PROWLER, "s3_bucket_object_versioning"),
               (SECURITY_HUB, "S3.8"), (SECURITY_HUB, "S3.5"), (PROWLER, "s3_bucket_default_encryption")),
    "table": ((PROWLER, "dynamodb_tables_pitr_enabled"), (SECURITY_HUB, "DynamoDB.2")),
    "queue": ((SECURITY_HUB, "SQS.1"), (PROWLER, "sqs_queues_server_side_encryption_enabled")),
    "role": ((PROWLER, "iam_role_administratoraccess_policy"),),
    "sg": ((SECURITY_HUB, "EC2.18"), (SECURITY_HUB, "EC2.19"),
           (PROWLER, "ec2_securitygroup_allow_ingress_from_internet_to_all_ports")),
    "instance": ((SECURITY_HUB, "EC2.8"), (PROWLER, "ec2_instance_imdsv2_enabled")),
    "rds": ((SECURITY_HUB, "RDS.2"), (SECURITY_HUB, "RDS.3"), (PROWLER, "rds_instance_storage_encrypted")),
}
# How many untouched resources with a finding, and inventory assets without one, each unit of scale adds.
UNTOUCHED_PER_UNIT = {"bucket": 8, "table": 3, "queue": 3, "role": 3, "sg": 3, "instance": 2, "rds": 2}
INVENTORY_PER_UNIT = 96
INTERNAL_SERVICES_PER_UNIT = 2

_TEAMS = ("payments", "ledger", "risk", "identity", "data", "platform", "growth", "support", "treasury", "compliance")
_PURPOSES = {
    "bucket": ("archive", "uploads", "snapshots", "invoices", "audit-logs", "ml-features", "tmp", "backups",
               "receipts", "partner-files"),
    "table": ("promotions", "feature-flags", "merchant-profiles", "rate-limits", "idempotency-keys",
              "payout-schedules", "card-tokens-legacy", "referrals"),
    "queue": ("payout-retries", "chargebacks", "email-outbox", "webhook-retries", "settlement-batches",
              "audit-events"),
    "role": ("ci-deployer", "data-scientist", "support-readonly", "break-glass", "terraform-runner", "etl-runner"),
    "sg": ("jenkins", "airflow", "metabase", "grafana", "legacy-vpn", "sftp"),
    "instance": ("jenkins", "airflow-worker", "legacy-batch", "metabase", "sftp-gateway"),
    "rds": ("metabase-db", "airflow-db", "legacy-payouts", "reporting-replica"),
}
_INTERNAL_NOUNS = ("payouts", "notifications", "statements-render", "merchant-portal", "card-issuing", "disputes",
                   "rewards", "settlement")


def hex_id(rng: random.Random, bits: int) -> str:
    """``bits`` random bits as fixed-width lower-case hex, the shape of most AWS resource ids."""
    return f"{rng.getrandbits(bits):0{bits // 4}x}"


def k8s_suffix(rng: random.Random, length: int) -> str:
    return "".join(rng.choice(_K8S_ALPHABET) for _ in range(length))


def node_name(rng: random.Random) -> str:
    """An EKS worker node's hostname (what Falco reports as ``hostname``, and ``k8s.node.name``)."""
    return f"ip-10-42-{rng.randint(0, 15)}-{rng.randint(2, 250)}.ec2.internal"


def _tags(**tags) -> AssetTags:
    return AssetTags(environment="prod", **tags)


def _asset(entity: str, aliases: list[str], service: str | None = None, via: tuple[str, ...] = (),
           **tags) -> Asset:
    return Asset(id=entity, aliases=aliases, service=service, tags=_tags(**tags), exercised_via=list(via))


def bucket(name: str, service: str | None = None, **tags) -> Resource:
    host = f"{name}.s3.{REGION}.amazonaws.com"
    return Resource("bucket", name, s3_bucket_arn(name), _asset(s3_bucket_arn(name), [name, host], service, **tags))


def table(name: str, service: str | None = None, **tags) -> Resource:
    arn = dynamodb_table_arn(name, REGION, ACCOUNT)
    return Resource("table", name, arn, _asset(arn, [name], service, **tags))


def queue(name: str, service: str | None = None, **tags) -> Resource:
    arn = aws_arn("sqs", REGION, ACCOUNT, name)
    url = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"
    return Resource("queue", name, arn, _asset(arn, [name, url], service, **tags), {"url": url})


def database(name: str, rng: random.Random, service: str | None = None, **tags) -> Resource:
    arn = aws_arn("rds", REGION, ACCOUNT, f"db:{name}")
    endpoint = f"{name}.{k8s_suffix(rng, 12)}.{REGION}.rds.amazonaws.com"
    return Resource("rds", name, arn, _asset(arn, [name, endpoint], service, **tags),
                    {"endpoint": endpoint, "port": 5432, "engine": "postgres"})


def role(name: str, via: tuple[str, ...] = (), **tags) -> Resource:
    arn = iam_arn(ACCOUNT, "role", name)
    return Resource("role", name, arn, _asset(arn, [name], None, via, **tags))


def security_group(label: str, rng: random.Random, via: tuple[str, ...] = (), port: int = 5432, **tags) -> Resource:
    group_id = "sg-0" + hex_id(rng, 64)
    arn = aws_arn("ec2", REGION, ACCOUNT, f"security-group/{group_id}")
    return Resource("sg", group_id, arn, _asset(arn, [group_id, label], None, via, **tags),
                    {"group_name": label, "port": port})


def instance(label: str, rng: random.Random, **tags) -> Resource:
    instance_id = "i-0" + hex_id(rng, 64)
    arn = aws_arn("ec2", REGION, ACCOUNT, f"instance/{instance_id}")
    private_ip = f"10.0.{rng.randint(1, 3)}.{rng.randint(4, 250)}"
    return Resource("instance", instance_id, arn, _asset(arn, [instance_id, label, private_ip], None, **tags),
                    {"label": label, "private_ip": private_ip})


def service(name: str, namespace: str, rng: random.Random, **tags) -> Service:
    pod = f"{name}-{k8s_suffix(rng, 9)}-{k8s_suffix(rng, 5)}"
    pod_ip = f"10.42.{rng.randint(0, 15)}.{rng.randint(2, 250)}"
    entity = service_entity(name)
    asset = _asset(entity, [f"{name}.{namespace}.svc.cluster.local", name], name, **tags)
    return Service(name, namespace, pod, pod_ip, asset)


def build_estate(rng: random.Random, scale: int) -> Estate:
    """The whole estate for one seed and scale; same ``rng`` state, same estate."""
    services = {
        "payments-api": service("payments-api", "payments", rng, criticality="critical", data_classification="pci",
                                owner="payments-team", internet_facing=True),
        "ledger": service("ledger", "payments", rng, criticality="critical", data_classification="pci",
                          owner="ledger-team", internet_facing=False),
        "fraud-scoring": service("fraud-scoring", "risk", rng, criticality="high",
                                 data_classification="confidential", owner="risk-team", internet_facing=False),
        "kyc": service("kyc", "identity", rng, criticality="high", data_classification="pii",
                       owner="identity-team", internet_facing=False),
        "reporting": service("reporting", "data", rng, criticality="medium", data_classification="confidential",
                             owner="data-team", internet_facing=False),
    }
    ledger_db = database("ledger-prod", rng, "ledger", criticality="critical", data_classification="pci",
                         owner="ledger-team")
    resources = {
        "statements": bucket(f"{COMPANY}-prod-statements", "ledger", criticality="high", data_classification="pci",
                             owner="ledger-team"),
        "kyc_documents": bucket(f"{COMPANY}-prod-kyc-documents", "kyc", criticality="medium",
                                data_classification="pii", owner="identity-team"),
        "exports": bucket(f"{COMPANY}-prod-exports", "reporting", criticality="medium",
                          data_classification="confidential", owner="data-team"),
        "ledger_db": ledger_db,
        "fraud_features": table("fraud-features", "fraud-scoring", criticality="medium",
                                data_classification="confidential", owner="risk-team"),
        "ledger_events": queue("ledger-events", "ledger", data_classification="confidential", owner="ledger-team"),
        # Security groups and roles carry no criticality tag: they are worth what they guard.
        "ledger_db_sg": security_group("ledger-db", rng, via=(ledger_db.arn,), owner="platform-team"),
        "payments_alb_sg": security_group("payments-api-alb", rng, via=(service_entity("payments-api"),),
                                          port=443, owner="platform-team"),
        "ledger_role": role("ledger-irsa", via=(service_entity("ledger"),), owner="ledger-team"),
        "payments_role": role("payments-api-irsa", via=(service_entity("payments-api"),), owner="payments-team"),
        "kyc_role": role("kyc-irsa", via=(service_entity("kyc"),), owner="identity-team"),
        # Resources nothing in the scenario touches, with severe findings: the noise hotpath holds back.
        "legacy_uploads": bucket(f"{COMPANY}-legacy-uploads", criticality="high", data_classification="pii",
                                 owner="growth-team"),
        "analytics_staging": database("analytics-staging", rng, criticality="low", data_classification="internal",
                                      owner="data-team"),
        "bastion_sg": security_group("legacy-bastion", rng, port=22, owner="platform-team"),
        "legacy_admin": role("legacy-admin", owner="platform-team"),
    }
    root = Resource("account", ACCOUNT, f"arn:aws:iam::{ACCOUNT}:root")
    analyzer = Resource("account", ACCOUNT, aws_arn("accessanalyzer", REGION, ACCOUNT, "analyzer/unknown"))
    r, p, s = resources, PROWLER, SECURITY_HUB
    findings = [
        PlannedFinding(p["s3_bucket_public_access"], r["statements"], "P1", internet=True),
        PlannedFinding(s["S3.8"], r["statements"], "P1", internet=True),
        PlannedFinding(s["RDS.2"], r["ledger_db"], "P1", internet=True),
        PlannedFinding(p["rds_instance_storage_encrypted"], r["ledger_db"], "P1", internet=True),
        PlannedFinding(s["EC2.18"], r["ledger_db_sg"], "P2", internet=True),
        PlannedFinding(p["iam_role_administratoraccess_policy"], r["ledger_role"], "P2", internet=True),
        PlannedFinding(p["dynamodb_tables_pitr_enabled"], r["fraud_features"], "P2", internet=True),
        PlannedFinding(s["SQS.1"], r["ledger_events"], "P2", internet=True),
        PlannedFinding(p["s3_bucket_object_versioning"], r["kyc_documents"], "P3"),
        PlannedFinding(p["s3_bucket_lifecycle_enabled"], r["exports"], "quiet"),
        PlannedFinding(p["s3_bucket_public_access"], r["legacy_uploads"], "held"),
        PlannedFinding(s["RDS.2"], r["analytics_staging"], "held"),
        PlannedFinding(s["EC2.19"], r["bastion_sg"], "held"),
        PlannedFinding(p["iam_role_administratoraccess_policy"], r["legacy_admin"], "held"),
        PlannedFinding(p["iam_root_mfa_enabled"], root, "held"),
        PlannedFinding(p["accessanalyzer_enabled"], analyzer, "held"),
    ]
    internal: list[InternalService] = []
    inventory: list[Asset] = []
    for unit in range(1, scale + 1):
        findings += _untouched_findings(rng, unit)
        inventory += _inventory(rng, unit)
        if unit > 1:
            for index in range(INTERNAL_SERVICES_PER_UNIT):
                internal.append(_internal_service(rng, unit, index))
    for unit in internal:
        findings.append(PlannedFinding(p["dynamodb_tables_kms_cmk_encryption_enabled"], unit.table, "quiet"))
        findings.append(PlannedFinding(p["s3_bucket_lifecycle_enabled"], unit.bucket, "quiet"))
    noise_pods = [("monitoring", f"prometheus-node-exporter-{k8s_suffix(rng, 5)}"),
                  ("argocd", f"argocd-repo-server-{k8s_suffix(rng, 9)}-{k8s_suffix(rng, 5)}"),
                  ("kube-system", f"aws-node-{k8s_suffix(rng, 5)}")]
    unrelated = instance("vpn-gateway", rng, owner="platform-team", criticality="low")
    # Last, so every draw above is the same as without the website.
    services["website"] = service("website", "web", rng, criticality="medium", data_classification="public",
                                  owner="marketing-team", internet_facing=True)
    resources["website_assets"] = bucket(f"{COMPANY}-www", "website", criticality="low",
                                         data_classification="public", owner="marketing-team")
    findings.append(PlannedFinding(p["s3_bucket_public_access"], resources["website_assets"], "P2", internet=True,
                                   accepted_by=MARKETING_SITE_RULE))
    return Estate(services, resources, findings, internal, inventory, unrelated, noise_pods)


def _untouched_resource(rng: random.Random, kind: str, unit: int, index: int) -> Resource:
    """A resource of some team, unique by (unit, index), with random but plausible tags."""
    team = rng.choice(_TEAMS)
    name = f"{team}-{rng.choice(_PURPOSES[kind])}-{unit:03d}-{index:03d}"
    if kind == "bucket":
        name = f"{COMPANY}-{name}"
    tags = {"owner": f"{team}-team",
            "criticality": rng.choice(("critical", "high", "medium", "low")),
            "data_classification": rng.choice(("pci", "pii", "confidential", "internal", "public"))}
    if kind == "bucket":
        return bucket(name, **tags)
    if kind == "table":
        return table(name, **tags)
    if kind == "queue":
        return queue(name, **tags)
    if kind == "role":
        return role(name, owner=tags["owner"])
    if kind == "sg":
        return security_group(name, rng, port=rng.choice((22, 3389, 5432, 6379, 9200)), owner=tags["owner"])
    if kind == "instance":
        return instance(name, rng, owner=tags["owner"], criticality=tags["criticality"])
    return database(name, rng, **tags)


def _untouched_findings(rng: random.Random, unit: int) -> list[PlannedFinding]:
    out = []
    for kind, count in UNTOUCHED_PER_UNIT.items():
        for index in range(count):
            resource = _untouched_resource(rng, kind, unit, index)
            catalog, check_id = rng.choice(_UNTOUCHED_CHECKS[kind])
            out.append(PlannedFinding(catalog[check_id], resource, "held"))
    return out


def _inventory(rng: random.Random, unit: int) -> list[Asset]:
    """Resources of the account with no finding on them, as an asset inventory lists them."""
    kinds = ("bucket", "table", "queue", "bucket")
    out = []
    for index in range(INVENTORY_PER_UNIT):
        kind = kinds[index % len(kinds)]
        out.append(_untouched_resource(rng, kind, unit, 50 + index).asset)  # type: ignore[arg-type]
    return out


def _internal_service(rng: random.Random, unit: int, index: int) -> InternalService:
    noun = _INTERNAL_NOUNS[(unit * INTERNAL_SERVICES_PER_UNIT + index) % len(_INTERNAL_NOUNS)]
    name = f"{noun}-{unit:03d}"
    owner = f"{noun}-team"
    svc = service(name, noun, rng, criticality="low", data_classification="internal", owner=owner,
                  internet_facing=False)
    return InternalService(svc, table(f"{name}-state", name, owner=owner),
                           bucket(f"{COMPANY}-{name}-artifacts", name, owner=owner))
