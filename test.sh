#!/usr/bin/env bash
# Runs every phix test the way CI does: go vet, then the whole suite,
# including the tests against a real Vault server. The pinned Vault is
# built from the Go module proxy into ~/.cache/phix on first use (about
# 11 minutes once per machine; seconds afterwards).
set -euo pipefail
cd "$(dirname "$0")"

PHIX_VAULT_BIN=${PHIX_VAULT_BIN:-$(e2e/vaultd/ensure.sh)}
export PHIX_VAULT_BIN

go vet ./...
go test -count=1 -timeout 10m "$@" ./...
