#!/usr/bin/env bash
# The secrets amiflow needs that no operator makes, created once per namespace with random values:
#   amiflow-db-<service>      basic-auth (username, password): the service's PostgreSQL role; CloudNativePG
#                             sets the role's password from it and the service logs in with it
#   amiflow-identity-keys     key-encryption-key: 32 random bytes, base64, encrypting identity's signing keys
# Existing secrets are left alone (rotating is in deploy/RUNBOOK.md). Strimzi makes the Kafka users'
# secrets (amiflow-<service>) and the cluster CA; CloudNativePG makes amiflow-pg-ca. Optional secrets
# (amiflow-billing-payment-providers, amiflow-notify-channels) hold tenants' provider credentials: create
# them from your secret store when a tenant has some.
# Usage: deploy/k8s/create-secrets.sh NAMESPACE   (kubectl pointed at the cluster; openssl installed)
set -euo pipefail
namespace=${1:?usage: $0 NAMESPACE}
services=(ingest vee billing commands notify identity)

exists() { kubectl -n "$namespace" get secret "$1" >/dev/null 2>&1; }

kubectl get namespace "$namespace" >/dev/null 2>&1 || kubectl create namespace "$namespace"
for service in "${services[@]}"; do
  name="amiflow-db-$service"
  if exists "$name"; then echo "kept $name"; continue; fi
  # Hex: safe inside a database URL without escaping (the backup job splices it into one).
  kubectl -n "$namespace" create secret generic "$name" --type=kubernetes.io/basic-auth \
    --from-literal=username="$service" --from-literal=password="$(openssl rand -hex 32)" >/dev/null
  kubectl -n "$namespace" label secret "$name" cnpg.io/reload=true app.kubernetes.io/part-of=amiflow >/dev/null
  echo "created $name"
done
if exists amiflow-identity-keys; then
  echo "kept amiflow-identity-keys"
else
  kubectl -n "$namespace" create secret generic amiflow-identity-keys \
    --from-literal=key-encryption-key="$(openssl rand -base64 32)" >/dev/null
  echo "created amiflow-identity-keys (keep a copy in your secret store: without it the signing keys are lost)"
fi
