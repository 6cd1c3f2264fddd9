"""Amazon GuardDuty findings, bare (the finding object of the API) or in the EventBridge "GuardDuty
Finding" event (``detail``); the caller unwraps the event.

Severity is GuardDuty's number in bands: 9.0-10 critical (GuardDuty's newer "Critical" band),
7.0-8.9 high, 4.0-6.9 medium, 1.0-3.9 low; below 1 (not produced today) informational.
The rule is the finding type (``Recon:IAMUser/MaliciousIPCaller.Custom``), the uid the finding ARN
(else its id), and the time ``service.eventLastSeen`` (when the activity was last seen), else
``updatedAt``.

Entities by ``resource.resourceType``:

* Instance: ``instanceDetails.instanceId`` as its EC2 instance ARN;
* AccessKey: the IAM user or role of ``accessKeyDetails`` (``userType`` IAMUser, AssumedRole/Role,
  Root) as its IAM ARN; any other caller as ``AWS::IAM::AccessKey/KEY_ID``;
* S3Bucket: every ``s3BucketDetails`` bucket as its S3 ARN;
* EKSCluster: ``eksClusterDetails`` as the cluster ARN;
* Lambda, RDSDBInstance, ECSCluster: the ARN in their details.

Whatever the type, a workload in ``kubernetesDetails`` is added too: its service when the resolver
knows the pod (or deployment), else, for a pod, ``k8s:pod/NAMESPACE/POD``.
"""

from __future__ import annotations

from typing import Any

from stream.entities.resolve import (
    EntityResolver,
    aws_arn,
    ec2_instance_arn,
    iam_arn,
    pod_entity,
    s3_bucket_arn,
)
from stream.jsonsafe import expect_dict, expect_list, text
from stream.models import DecodeError

EVENT_DETAIL_TYPE = "GuardDuty Finding"
_BANDS = ((9.0, "critical"), (7.0, "high"), (4.0, "medium"), (1.0, "low"), (0.0, "informational"))
_IAM_KINDS = {"IAMUser": "user", "AssumedRole": "role", "Role": "role"}
# resourceType -> (details object, its ARN field)
_ARN_DETAILS = {
    "Lambda": ("lambdaDetails", "functionArn"),
    "RDSDBInstance": ("rdsDbInstanceDetails", "dbInstanceArn"),
    "ECSCluster": ("ecsClusterDetails", "arn"),
}
_POD_WORKLOADS = {"pod", "pods"}


def is_guardduty(document: dict[str, Any]) -> bool:
    return "resource" in document and "service" in document and "type" in document and "severity" in document


def severity_band(severity: Any, what: str) -> str:
    if not isinstance(severity, int | float) or isinstance(severity, bool):
        raise DecodeError(f"{what}: severity must be a number, got {type(severity).__name__}")
    if not 0 <= severity <= 10:
        raise DecodeError(f"{what}: severity {severity} is outside GuardDuty's 0-10 scale")
    return next(name for floor, name in _BANDS if severity >= floor)


def _details(resource: dict[str, Any], key: str, what: str) -> dict[str, Any]:
    return expect_dict(resource.get(key), f"{what} resource.{key}")


def _access_key_entity(resource: dict[str, Any], account: str | None, what: str) -> tuple[str, str | None]:
    details = _details(resource, "accessKeyDetails", what)
    where = f"{what} accessKeyDetails"
    user_type = text(details, "userType", where, required=False)
    user = text(details, "userName", where, required=False)
    if user_type == "Root":
        return f"arn:aws:iam::{account or ''}:root", user
    if user and user_type in _IAM_KINDS:
        return iam_arn(account, _IAM_KINDS[user_type], user), user
    key_id = text(details, "accessKeyId", where)
    return f"AWS::IAM::AccessKey/{key_id}", user or key_id


def _resource_entities(
    resource: dict[str, Any], region: str | None, account: str | None, what: str
) -> tuple[list[str], str | None]:
    """The entities of the resource, and the name to call it by."""
    resource_type = text(resource, "resourceType", f"{what} resource")
    if resource_type == "Instance":
        instance = text(_details(resource, "instanceDetails", what), "instanceId", f"{what} instanceDetails")
        return [ec2_instance_arn(instance, region, account)], instance
    if resource_type == "AccessKey":
        entity, subject = _access_key_entity(resource, account, what)
        return [entity], subject
    if resource_type == "S3Bucket":
        buckets = expect_list(resource.get("s3BucketDetails"), f"{what} resource.s3BucketDetails")
        names = [text(expect_dict(bucket, f"{what} s3BucketDetails[]"), "name", f"{what} s3BucketDetails[]")
                 for bucket in buckets]
        return [s3_bucket_arn(name) for name in names], (names[0] if names else None)
    if resource_type == "EKSCluster":
        cluster = _details(resource, "eksClusterDetails", what)
        name = text(cluster, "name", f"{what} eksClusterDetails")
        arn = text(cluster, "arn", f"{what} eksClusterDetails", required=False)
        return [arn or aws_arn("eks", region, account, f"cluster/{name}")], name
    if resource_type in _ARN_DETAILS:
        key, field = _ARN_DETAILS[resource_type]
        arn = text(_details(resource, key, what), field, f"{what} {key}")
        return [arn], arn.rsplit(":", 1)[-1].rsplit("/", 1)[-1]
    raise DecodeError(f"{what}: resourceType {resource_type[:40]!r} is not supported")


def _workload(resource: dict[str, Any], resolver: EntityResolver, what: str) -> tuple[str | None, str | None]:
    """The service or pod entity of the Kubernetes workload, and its name."""
    kubernetes = resource.get("kubernetesDetails")
    if kubernetes is None:
        return None, None
    workload = expect_dict(kubernetes, f"{what} kubernetesDetails").get("kubernetesWorkloadDetails")
    if workload is None:
        return None, None
    workload = expect_dict(workload, f"{what} kubernetesWorkloadDetails")
    where = f"{what} kubernetesWorkloadDetails"
    name = text(workload, "name", where)
    service = resolver.service_of_pod(name)
    if service is not None:
        return service, name
    if (text(workload, "type", where, required=False) or "").lower() in _POD_WORKLOADS:
        return pod_entity(text(workload, "namespace", where, required=False), name), name
    return None, name


def guardduty_alert(finding: dict[str, Any], resolver: EntityResolver) -> dict[str, Any]:
    """The Alert fields of one GuardDuty finding."""
    what = "GuardDuty finding"
    account = text(finding, "accountId", what, required=False)
    region = text(finding, "region", what, required=False)
    resource = expect_dict(finding.get("resource"), f"{what} resource")
    entities, subject = _resource_entities(resource, region, account, what)
    workload, workload_name = _workload(resource, resolver, what)
    if workload is not None:
        entities.append(workload)
    service = expect_dict(finding.get("service", {}), f"{what} service")
    observed_at = service.get("eventLastSeen") or finding.get("updatedAt") or finding.get("createdAt")
    if observed_at is None:
        raise DecodeError(f"{what}: no time (service.eventLastSeen or updatedAt)")
    return {
        "uid": text(finding, "arn", what, required=False) or text(finding, "id", what),
        "source": "guardduty",
        "rule": text(finding, "type", what),
        "severity": severity_band(finding.get("severity"), what),
        "entities": list(dict.fromkeys(entities)),
        "observed_at": observed_at,
        "subject": workload_name or subject,
    }
