#!/bin/sh
# Creates the Secrets the manifests in this folder read, each value fresh
# from /dev/urandom: the manifests ship none, so no deployment runs on a
# default password. Run it once, before `kubectl apply -f deploy/k8s/`
# (set NAMESPACE to use another namespace). It refuses to replace a Secret
# that exists. It prints the first admin's password once; sign in as
# `admin` with it and change it.
set -eu

random() {
    # 32 characters from [A-Za-z0-9].
    LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32
}

ns=${NAMESPACE:-default}
pg_password=$(random)
s3_access=coffer-$(random | head -c 12)
s3_secret=$(random)
admin_password=$(random)

kubectl create secret generic coffer-db --namespace "$ns" \
    --from-literal=POSTGRES_USER=coffer \
    --from-literal=POSTGRES_PASSWORD="$pg_password" \
    --from-literal=POSTGRES_DB=coffer \
    --from-literal=COFFER_DATABASE_URL="postgres://coffer:$pg_password@postgres:5432/coffer"

kubectl create secret generic coffer-s3 --namespace "$ns" \
    --from-literal=MINIO_ACCESS_KEY="$s3_access" \
    --from-literal=MINIO_SECRET_KEY="$s3_secret"

kubectl create secret generic coffer-auth --namespace "$ns" \
    --from-literal=COFFER_ADMIN_PASSWORD="$admin_password"

echo "Secrets coffer-db, coffer-s3 and coffer-auth created in namespace $ns."
echo "The first admin: user admin, password $admin_password (shown once; change it after signing in)."
