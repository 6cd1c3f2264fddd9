"""Wire formats of the demo's findings and alerts, built field for field like the real producers.

* Prowler ``json-ocsf``: one OCSF 1.4 Detection Finding per record (Prowler writes a JSON array; a
  pipe such as ``jq -c '.[]'`` puts one finding on each Kafka record).
* Security Hub ASFF inside the EventBridge event "Security Hub Findings - Imported".
* Falco events as falcosidekick's Kafka output publishes them (Falco's JSON plus ``uuid``).
* GuardDuty findings inside the EventBridge event "GuardDuty Finding".

Every function is pure: times and ids come from the caller, so a seeded scenario is reproducible.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from typing import Any

from stream.demo.estate import ACCOUNT, ACCOUNT_NAME, CLUSTER, REGION, Check, Resource, hex_id
from stream.entities.resolve import deployment_of_pod

PROWLER_VERSION = "5.7.5"
OCSF_VERSION = "1.4.0"
_OCSF_SEVERITY_ID = {"informational": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}
_ASFF_NORMALIZED = {"informational": 0, "low": 30, "medium": 40, "high": 70, "critical": 90}
_STANDARD = "aws-foundational-security-best-practices/v/1.0.0"
# Asset tag -> the AWS tag key an account would carry it in.
_AWS_TAG_KEYS = {"criticality": "criticality", "data_classification": "data-classification", "owner": "owner",
                 "environment": "environment"}


def seeded_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def iso_z(ts: float, timespec: str = "milliseconds") -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def iso_nanos(ts: float) -> str:
    """RFC 3339 with nanoseconds, as Falco writes ``time``."""
    whole = int(ts)
    nanos = round((ts - whole) * 1e9)
    return datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"


def aws_tags(resource: Resource) -> dict[str, str]:
    if resource.asset is None:
        return {}
    tags = resource.asset.tags.model_dump(exclude_none=True)
    return {_AWS_TAG_KEYS[key]: str(value) for key, value in tags.items() if key in _AWS_TAG_KEYS}


def prowler_finding(check: Check, resource: Resource, ts: float) -> dict[str, Any]:
    """One Prowler OCSF Detection Finding with status FAIL, as ``--output-formats json-ocsf`` writes it."""
    detail = check.status_detail.format(name=resource.name)
    naive = datetime.fromtimestamp(ts, UTC).replace(tzinfo=None).isoformat(timespec="microseconds")
    tags = aws_tags(resource)
    return {
        "message": detail,
        "metadata": {
            "event_code": check.id,
            "product": {"name": "Prowler", "uid": "prowler", "vendor_name": "Prowler", "version": PROWLER_VERSION},
            "profiles": ["cloud", "datetime"],
            "tenant_uid": "",
            "version": OCSF_VERSION,
        },
        "severity_id": _OCSF_SEVERITY_ID[check.severity],
        "severity": check.severity.capitalize(),
        "status": "New",
        "status_code": "FAIL",
        "status_detail": detail,
        "status_id": 1,
        "unmapped": {
            "related_url": "",
            "categories": ["internet-exposed"] if "public" in check.id else [],
            "depends_on": [],
            "related_to": [],
            "additional_urls": [],
            "notes": "",
            "compliance": {"AWS-Foundational-Security-Best-Practices": [check.service]},
        },
        "activity_name": "Create",
        "activity_id": 1,
        "finding_info": {
            "created_time": int(ts),
            "created_time_dt": naive,
            "desc": check.description,
            "product_uid": "prowler",
            "title": check.title,
            "types": [],
            "uid": f"prowler-aws-{check.id}-{ACCOUNT}-{REGION}-{resource.name}",
        },
        "resources": [{
            "cloud_partition": "aws",
            "region": REGION,
            "data": {"details": "", "metadata": {"arn": resource.arn, "name": resource.name, "region": REGION,
                                                 **resource.details,
                                                 "tags": [{"Key": k, "Value": v} for k, v in tags.items()]}},
            "group": {"name": check.service},
            "labels": [f"{k}:{v}" for k, v in tags.items()],
            "name": resource.name,
            "type": check.resource_type,
            "uid": resource.arn,
        }],
        "category_name": "Findings",
        "category_uid": 2,
        "class_name": "Detection Finding",
        "class_uid": 2004,
        "cloud": {
            "account": {"name": ACCOUNT_NAME, "type": "AWS Account", "type_id": 10, "uid": ACCOUNT, "labels": []},
            "org": {"name": "", "uid": ""},
            "provider": "aws",
            "region": REGION,
        },
        "remediation": {"desc": f"Fix {check.title[0].lower()}{check.title[1:]}", "references": []},
        "risk_details": check.description,
        "time": int(ts),
        "time_dt": naive,
        "type_uid": 200401,
        "type_name": "Detection Finding: Create",
    }


def _asff_details(check: Check, resource: Resource, ts: float, rng: random.Random) -> dict[str, Any]:
    details = resource.details
    if resource.kind == "bucket":
        return {"AwsS3Bucket": {"OwnerId": hex_id(rng, 256), "CreatedAt": iso_z(ts - 86400 * 400)}}
    if resource.kind == "rds":
        return {"AwsRdsDbInstance": {
            "DBInstanceIdentifier": resource.name, "DBInstanceClass": "db.r6g.large",
            "Endpoint": {"Address": details["endpoint"], "Port": details["port"]},
            "Engine": details["engine"], "EngineVersion": "16.3", "PubliclyAccessible": check.id == "RDS.2",
            "StorageEncrypted": check.id != "RDS.3", "DbInstanceStatus": "available", "MultiAz": True,
        }}
    if resource.kind == "sg":
        port = details["port"]
        return {"AwsEc2SecurityGroup": {
            "GroupName": details["group_name"], "GroupId": resource.name, "OwnerId": ACCOUNT,
            "VpcId": "vpc-0" + hex_id(rng, 64),
            "IpPermissions": [{"IpProtocol": "tcp", "FromPort": port, "ToPort": port,
                               "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
        }}
    if resource.kind == "queue":
        return {"AwsSqsQueue": {"QueueName": resource.name}}
    if resource.kind == "table":
        return {"AwsDynamoDbTable": {"TableName": resource.name, "TableStatus": "ACTIVE"}}
    if resource.kind == "instance":
        return {"AwsEc2Instance": {"Type": "t3.medium", "ImageId": "ami-0" + hex_id(rng, 64),
                                   "IpV4Addresses": [details["private_ip"]], "LaunchedAt": iso_z(ts - 86400 * 90)}}
    return {}


def security_hub_event(check: Check, resource: Resource, ts: float, rng: random.Random) -> dict[str, Any]:
    """One ASFF finding in its EventBridge "Security Hub Findings - Imported" event."""
    finding_id = (f"arn:aws:securityhub:{REGION}:{ACCOUNT}:subscription/{_STANDARD}/{check.id}/finding/"
                  f"{seeded_uuid(rng)}")
    product_arn = f"arn:aws:securityhub:{REGION}::product/aws/securityhub"
    label = check.severity.upper()
    observed = iso_z(ts)
    types = ["Software and Configuration Checks/Industry and Regulatory Standards/"
             "AWS-Foundational-Security-Best-Practices"]
    rule = f"{check.config_rule}-{rng.getrandbits(32):08x}"
    finding = {
        "SchemaVersion": "2018-10-08",
        "Id": finding_id,
        "ProductArn": product_arn,
        "ProductName": "Security Hub",
        "CompanyName": "AWS",
        "Region": REGION,
        "GeneratorId": f"{_STANDARD}/{check.id}",
        "AwsAccountId": ACCOUNT,
        "Types": types,
        "FirstObservedAt": iso_z(ts - 3600 * 6),
        "LastObservedAt": observed,
        "CreatedAt": iso_z(ts - 3600 * 6),
        "UpdatedAt": observed,
        "Severity": {"Product": _ASFF_NORMALIZED[check.severity], "Label": label,
                     "Normalized": _ASFF_NORMALIZED[check.severity], "Original": label},
        "Title": f"{check.id} {check.title}",
        "Description": check.description,
        "Remediation": {"Recommendation": {
            "Text": "For directions on how to fix this issue, consult the AWS Security Hub Foundational Security "
                    "Best Practices documentation.",
            "Url": f"https://docs.aws.amazon.com/console/securityhub/{check.id}/remediation",
        }},
        "ProductFields": {
            "StandardsArn": f"arn:aws:securityhub:::standards/{_STANDARD}",
            "StandardsSubscriptionArn": f"arn:aws:securityhub:{REGION}:{ACCOUNT}:subscription/{_STANDARD}",
            "ControlId": check.id,
            "RecommendationUrl": f"https://docs.aws.amazon.com/console/securityhub/{check.id}/remediation",
            "RelatedAWSResources:0/name": rule,
            "RelatedAWSResources:0/type": "AWS::Config::ConfigRule",
            "StandardsControlArn": f"arn:aws:securityhub:{REGION}:{ACCOUNT}:control/{_STANDARD}/{check.id}",
            "aws/securityhub/ProductName": "Security Hub",
            "aws/securityhub/CompanyName": "AWS",
            "Resources:0/Id": resource.arn,
            "aws/securityhub/FindingId": f"{product_arn}/{finding_id}",
        },
        "Resources": [{"Type": check.resource_type, "Id": resource.arn, "Partition": "aws", "Region": REGION,
                       "Tags": aws_tags(resource), "Details": _asff_details(check, resource, ts, rng)}],
        "Compliance": {"Status": "FAILED"},
        "WorkflowState": "NEW",
        "Workflow": {"Status": "NEW"},
        "RecordState": "ACTIVE",
        "FindingProviderFields": {"Severity": {"Label": label, "Original": label}, "Types": types},
    }
    return {
        "version": "0",
        "id": seeded_uuid(rng),
        "detail-type": "Security Hub Findings - Imported",
        "source": "aws.securityhub",
        "account": ACCOUNT,
        "time": iso_z(ts, "seconds"),
        "region": REGION,
        "resources": [f"{product_arn}/{finding_id}"],
        "detail": {"findings": [finding]},
    }


# Falco rules the scenario fires: priority, tags, and the rule's output text before the fields.
FALCO_RULES: dict[str, tuple[str, list[str], str]] = {
    "Terminal shell in container": (
        "Notice", ["T1059", "container", "maturity_stable", "mitre_execution", "shell"],
        "A shell was spawned in a container with an attached terminal",
    ),
    "Contact K8S API Server From Container": (
        "Notice", ["T1565", "container", "k8s", "maturity_stable", "mitre_discovery", "network"],
        "Unexpected connection to K8s API Server from container",
    ),
}


def falco_event(rule: str, ts: float, *, namespace: str, pod: str, image: str, node: str,
                rng: random.Random, process: str = "bash", parent: str = "runc") -> dict[str, Any]:
    """A Falco event as falcosidekick publishes it to Kafka (Falco's JSON output plus ``uuid``)."""
    priority, tags, text = FALCO_RULES[rule]
    container_id = hex_id(rng, 48)
    repository, _, tag = image.rpartition(":")
    fields: dict[str, Any] = {
        "container.id": container_id,
        "container.image.repository": repository,
        "container.image.tag": tag,
        "container.name": deployment_of_pod(pod),
        "evt.time": int(ts * 1e9),
        "evt.type": "execve" if process in ("bash", "sh") else "connect",
        "k8s.ns.name": namespace,
        "k8s.pod.name": pod,
        "proc.cmdline": process,
        "proc.exepath": f"/bin/{process}" if process in ("bash", "sh") else f"/usr/bin/{process}",
        "proc.name": process,
        "proc.pname": parent,
        "user.loginuid": -1,
        "user.name": "root",
        "user.uid": 0,
    }
    if rule == "Terminal shell in container":
        fields.update({"evt.arg.flags": "EXE_WRITABLE", "proc.tty": 34816})
    else:
        fields.update({"fd.name": f"10.42.0.{rng.randint(2, 250)}:{rng.randint(32768, 60999)}->172.20.0.1:443",
                       "fd.lport": 443, "fd.sip": "172.20.0.1"})
    described = " ".join(f"{key.replace('.', '_')}={value}" for key, value in fields.items() if key != "evt.time")
    clock = iso_nanos(ts)[11:-1]
    return {
        "uuid": seeded_uuid(rng),
        "output": f"{clock}: {priority} {text} | {described}",
        "priority": priority,
        "rule": rule,
        "time": iso_nanos(ts),
        "output_fields": fields,
        "source": "syscall",
        "tags": tags,
        "hostname": node,
    }


def guardduty_event(instance: Resource, ts: float, rng: random.Random) -> dict[str, Any]:
    """A GuardDuty port-probe finding on an EC2 instance, in its EventBridge "GuardDuty Finding" event."""
    finding_id = hex_id(rng, 128)
    detector = hex_id(rng, 128)
    remote_ip = f"{rng.choice((45, 80, 91, 185, 193))}.{rng.randint(1, 254)}.{rng.randint(1, 254)}." \
                f"{rng.randint(1, 254)}"
    observed = iso_z(ts)
    detail = {
        "schemaVersion": "2.0",
        "accountId": ACCOUNT,
        "region": REGION,
        "partition": "aws",
        "id": finding_id,
        "arn": f"arn:aws:guardduty:{REGION}:{ACCOUNT}:detector/{detector}/finding/{finding_id}",
        "type": "Recon:EC2/PortProbeUnprotectedPort",
        "resource": {
            "resourceType": "Instance",
            "instanceDetails": {
                "instanceId": instance.name,
                "instanceType": "t3.medium",
                "launchTime": iso_z(ts - 86400 * 200),
                "productCodes": [],
                "imageId": "ami-0" + hex_id(rng, 64),
                "imageDescription": "Amazon Linux 2023 AMI 2023.7.20250512.0 x86_64 HVM kernel-6.1",
                "networkInterfaces": [{
                    "privateIpAddress": instance.details["private_ip"],
                    "subnetId": "subnet-0" + hex_id(rng, 64),
                    "vpcId": "vpc-0" + hex_id(rng, 64),
                    "securityGroups": [{"groupName": instance.details["label"], "groupId": "sg-0" + hex_id(rng, 64)}],
                    "publicIp": f"54.{rng.randint(1, 254)}.{rng.randint(1, 254)}.{rng.randint(1, 254)}",
                }],
                "tags": [{"key": "Name", "value": instance.details["label"]}],
                "instanceState": "running",
                "availabilityZone": f"{REGION}a",
            },
        },
        "service": {
            "serviceName": "guardduty",
            "detectorId": detector,
            "action": {
                "actionType": "PORT_PROBE",
                "portProbeAction": {
                    "blocked": False,
                    "portProbeDetails": [{
                        "localPortDetails": {"port": 22, "portName": "SSH"},
                        "remoteIpDetails": {"ipAddressV4": remote_ip, "organization": {"asn": "9009", "isp": "M247"},
                                            "country": {"countryName": "Romania"}},
                    }],
                },
            },
            "resourceRole": "TARGET",
            "eventFirstSeen": observed,
            "eventLastSeen": observed,
            "archived": False,
            "count": rng.randint(1, 40),
        },
        "severity": 2,
        "createdAt": observed,
        "updatedAt": observed,
        "title": f"Unprotected port on EC2 instance {instance.name} is being probed.",
        "description": f"EC2 instance {instance.name} has an unprotected port which is being probed by a known "
                       f"malicious host.",
    }
    return {
        "version": "0",
        "id": seeded_uuid(rng),
        "detail-type": "GuardDuty Finding",
        "source": "aws.guardduty",
        "account": ACCOUNT,
        "time": iso_z(ts, "seconds"),
        "region": REGION,
        "resources": [],
        "detail": detail,
    }


def image_of(service: str, version: str = "1.42.0") -> str:
    """The container image a service runs, in the account's ECR registry."""
    return f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{CLUSTER}/{service}:{version}"
