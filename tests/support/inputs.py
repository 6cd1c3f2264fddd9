"""Input records as their producers write them, for tests at every stage: findings (Prowler OCSF, Security Hub,
AWS Config), alerts (Falco, GuardDuty, EKS), assets; and the real public samples of each format."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from paths import SAMPLES

needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason="real samples (../shared/samples) are absent")


def sample(name: str) -> Any:
    """One of the real public samples, by its path under ../shared/samples."""
    return orjson.loads((SAMPLES / name).read_bytes())


def v2_event(finding: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "0", "id": "6f2b5c1e-0d7a-4c39-9a51-2f1f8e7c0b44", "detail-type": "Findings Imported V2",
        "source": "aws.securityhub", "account": "111122223333", "time": "2025-07-22T03:03:15Z",
        "region": "eu-west-1", "resources": [], "detail": {"findings": [finding]},
    }


def compliance_finding(compliance_status: str, compliance_status_id: int) -> dict[str, Any]:
    """An OCSF 1.x Compliance Finding as Security Hub writes one for a control on an S3 bucket."""
    return {
        "activity_id": 2, "activity_name": "Update", "category_uid": 2, "category_name": "Findings",
        "class_uid": 2003, "class_name": "Compliance Finding", "type_uid": 200302,
        "severity_id": 4, "severity": "High", "status_id": 1, "status": "New",
        "time": 1753153354272, "time_dt": "2025-07-22T03:02:34.272Z",
        "metadata": {
            "product": {"name": "Security Hub", "vendor_name": "AWS",
                        "uid": "arn:aws:securityhub:eu-west-1::productv2/aws/securityhub"},
            "profiles": ["cloud", "datetime"], "uid": "3c1d0a2e", "version": "1.6.0",
        },
        "cloud": {"account": {"type": "AWS Account", "type_id": 10, "uid": "111122223333"},
                  "provider": "AWS", "region": "eu-west-1"},
        "finding_info": {
            "uid": "arn:aws:securityhub:eu-west-1:111122223333:security-control/S3.8/finding/5b8a2c1d",
            "title": "S3 general purpose buckets should block public access",
            "types": ["Posture Management"], "created_time": 1753000000000, "modified_time": 1753153354272,
            "analytic": {"type": "Rule", "type_id": 1, "name": "securityhub-s3-bucket-level-public-access-prohibited"},
        },
        "compliance": {"control": "S3.8", "standards": ["standards/aws-foundational-security-best-practices/v/1.0.0"],
                       "status": compliance_status, "status_id": compliance_status_id},
        "resources": [{"type": "AWS::S3::Bucket", "uid": "acme-statements", "uid_alt": "arn:aws:s3:::acme-statements",
                       "cloud_partition": "aws", "region": "eu-west-1",
                       "owner": {"account": {"uid": "111122223333"}}}],
    }


def config_event(compliance: str, resource_type: str = "AWS::S3::Bucket", resource_id: str = "acme-statements",
                 rule: str = "s3-bucket-public-read-prohibited") -> dict[str, Any]:
    """An EventBridge "Config Rules Compliance Change" event, as AWS Config sends it."""
    qualifier = {"configRuleName": rule, "resourceType": resource_type, "resourceId": resource_id}
    return {
        "version": "0", "id": "c0bb891c-77fe-8518-14fc-be78b966f95b", "detail-type": "Config Rules Compliance Change",
        "source": "aws.config", "account": "111122223333", "time": "2026-03-02T10:15:06Z", "region": "eu-west-1",
        "resources": [],
        "detail": {
            "resourceId": resource_id, "awsRegion": "eu-west-1", "awsAccountId": "111122223333",
            "configRuleName": rule, "recordVersion": "1.0",
            "configRuleARN": "arn:aws:config:eu-west-1:111122223333:config-rule/config-rule-eguym2",
            "messageType": "ComplianceChangeNotification",
            "newEvaluationResult": {
                "evaluationResultIdentifier": {"evaluationResultQualifier": qualifier,
                                               "orderingTimestamp": "2026-03-02T10:14:50.251Z"},
                "complianceType": compliance,
                "resultRecordedTime": "2026-03-02T10:15:04.741Z",
                "configRuleInvokedTime": "2026-03-02T10:15:04.332Z",
            },
            "notificationCreationTime": "2026-03-02T10:15:05.751Z",
            "resourceType": resource_type,
        },
    }


POD = "payments-api-7d9f8c6b5-x2k4q"


def guardduty(name: str) -> dict[str, Any]:
    return orjson.loads((SAMPLES / "aws-guardduty" / name).read_bytes())


def eks_finding(workload_type: str = "pods") -> dict[str, Any]:
    """A GuardDuty EKS finding (resourceType EKSCluster) with the workload of kubernetesDetails."""
    return {
        "schemaVersion": "2.0", "accountId": "111122223333", "region": "eu-west-1", "partition": "aws",
        "id": "b6c4f1b29a7e3c1d0e5f", "type": "Execution:Kubernetes/ExecInKubeSystemPod", "severity": 8,
        "arn": "arn:aws:guardduty:eu-west-1:111122223333:detector/12abc34d/finding/b6c4f1b29a7e3c1d0e5f",
        "createdAt": "2026-03-02T10:00:00.000Z", "updatedAt": "2026-03-02T10:05:00.000Z",
        "title": "Command executed inside a pod", "description": "A command was executed inside a pod.",
        "resource": {
            "resourceType": "EKSCluster",
            "eksClusterDetails": {"name": "prod", "arn": "arn:aws:eks:eu-west-1:111122223333:cluster/prod",
                                  "vpcId": "vpc-0a1b2c3d", "status": "ACTIVE"},
            "kubernetesDetails": {
                "kubernetesUserDetails": {"username": "ci-bot", "uid": "7c1d", "groups": ["system:authenticated"]},
                "kubernetesWorkloadDetails": {"name": POD, "type": workload_type, "uid": "e2f1",
                                              "namespace": "payments", "hostNetwork": False},
            },
        },
        "service": {"serviceName": "guardduty", "detectorId": "12abc34d", "archived": False, "count": 1,
                    "eventFirstSeen": "2026-03-02T09:58:00.000Z", "eventLastSeen": "2026-03-02T09:59:30.000Z",
                    "resourceRole": "TARGET", "action": {"actionType": "KUBERNETES_API_CALL"}},
    }


def falco_event(**changes: Any) -> dict[str, Any]:
    """A Falco JSON output event (json_output: true, json_include_output_property and tags on)."""
    event = {
        "hostname": "ip-10-0-3-17",
        "output": f"10:22:31.512358912: Notice A shell was spawned in a container with an attached terminal "
                  f"(user=root user_loginuid=-1 k8s.ns=payments k8s.pod={POD} container=3ad2a6b4e1c0 "
                  f"shell=bash parent=runc cmdline=bash terminal=34816 container_id=3ad2a6b4e1c0 "
                  f"image=ghcr.io/acme/payments-api)",
        "priority": "Notice",
        "rule": "Terminal shell in container",
        "source": "syscall",
        "tags": ["T1059", "container", "maturity_stable", "mitre_execution", "shell"],
        "time": "2026-03-02T10:22:31.512358912Z",
        "output_fields": {
            "container.id": "3ad2a6b4e1c0", "container.image.repository": "ghcr.io/acme/payments-api",
            "container.image.tag": "1.42.0", "container.name": "payments-api", "evt.time": 1772446951512358912,
            "k8s.ns.name": "payments", "k8s.pod.name": POD, "proc.cmdline": "bash", "proc.name": "bash",
            "proc.pname": "runc", "proc.tty": 34816, "user.loginuid": -1, "user.name": "root", "fd.sip": None,
        },
    }
    event.update(changes)
    return event


LEDGER = {
    "id": "arn:aws:rds:eu-west-1:111122223333:db:ledger",
    "aliases": ["ledger.c9x2.eu-west-1.rds.amazonaws.com", "ledger"],
    "service": "payments-api",
    "tags": {"criticality": "critical", "data_classification": "pci", "environment": "prod",
             "owner": "team-payments", "internet_facing": False, "cost_center": "cc-4411"},
    "exercised_via": ["service:payments-api"],
}


SG = {"id": "arn:aws:ec2:eu-west-1:111122223333:security-group/sg-0ledger",
      "exercised_via": ["arn:aws:rds:eu-west-1:111122223333:db:ledger"]}


ASSET_YAML = """\
assets:
  - id: arn:aws:rds:eu-west-1:111122223333:db:ledger
    aliases: [ledger.c9x2.eu-west-1.rds.amazonaws.com, ledger]
    service: payments-api
    tags:
      criticality: critical
      data_classification: pci
      environment: prod
      owner: team-payments
      internet_facing: false
      cost_center: cc-4411
    exercised_via: [service:payments-api]
  - id: arn:aws:ec2:eu-west-1:111122223333:security-group/sg-0ledger
    exercised_via: [arn:aws:rds:eu-west-1:111122223333:db:ledger]
"""
