#!/usr/bin/env bash
# Who may touch hotpath's dead-letter topic: only hotpath writes it, only security responders read it.
#
# Dead letters hold records hotpath could not decode or deliver. They are masked by default, but with
# HOTPATH_DLQ_KEEP_RAW=true they keep the records as they were (card numbers, tokens and all) for the
# topic's retention, so the topic gets its own ACLs, separate from the rest of the cluster's.
#
#   BOOTSTRAP=broker:9093 ADMIN_CONFIG=admin.properties deploy/acls/dlq-acls.sh          # apply
#   DRY_RUN=1 deploy/acls/dlq-acls.sh                                                     # print only
#
# Settings (environment):
#   BOOTSTRAP        brokers to reach (required unless DRY_RUN)
#   ADMIN_CONFIG     client properties of a principal allowed to alter ACLs (--command-config)
#   DLQ_TOPIC        the dead-letter topic, HOTPATH_TOPIC_DLQ (default hotpath.dlq)
#   WRITERS          space-separated principals of the worker and the delivery service
#                    (default User:hotpath, the principal of deploy/k8s/overlays/prod)
#   READERS          space-separated principals of the security responders (default User:security-responder)
#   READER_GROUP     prefix of the consumer groups responders read with (default hotpath-dlq-responders)
#   KAFKA_ACLS       the kafka-acls.sh of your Kafka distribution (default: kafka-acls.sh on PATH)
#
# ACLs only allow; they keep everyone else out only when the brokers run an authorizer and deny what
# no ACL allows (allow.everyone.if.no.acl.found=false, the default). Check what remains afterwards:
#   kafka-acls.sh --bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN_CONFIG" --list --topic hotpath.dlq
set -euo pipefail

DLQ_TOPIC=${DLQ_TOPIC:-hotpath.dlq}
WRITERS=${WRITERS:-User:hotpath}
READERS=${READERS:-User:security-responder}
READER_GROUP=${READER_GROUP:-hotpath-dlq-responders}
KAFKA_ACLS=${KAFKA_ACLS:-kafka-acls.sh}

acl() {
  if [[ -n ${DRY_RUN:-} ]]; then
    echo "$KAFKA_ACLS" "$@"
    return
  fi
  local connection=(--bootstrap-server "${BOOTSTRAP:?set BOOTSTRAP to the brokers (or DRY_RUN=1)}")
  if [[ -n ${ADMIN_CONFIG:-} ]]; then
    connection+=(--command-config "$ADMIN_CONFIG")
  fi
  "$KAFKA_ACLS" "${connection[@]}" "$@"
}

for writer in $WRITERS; do
  # Write only: hotpath never reads its dead letters back.
  acl --add --allow-principal "$writer" --operation Write --operation Describe --topic "$DLQ_TOPIC"
done
for reader in $READERS; do
  acl --add --allow-principal "$reader" --operation Read --operation Describe --topic "$DLQ_TOPIC"
  acl --add --allow-principal "$reader" --operation Read \
    --group "$READER_GROUP" --resource-pattern-type prefixed
done
