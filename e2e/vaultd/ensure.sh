#!/usr/bin/env bash
# Print the path of the pinned Vault test server, building it first when it
# is missing. The binary lives outside the repository, keyed by version:
#
#   ${PHIX_VAULT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/phix}/vault-1.21.1
#
# A cold build takes about 11 minutes and 6 GB of memory on 2 cores (see
# build.sh); a warm rebuild takes seconds. Only the path goes to stdout, so
#
#   PHIX_VAULT_BIN=$(e2e/vaultd/ensure.sh)
#
# works; build output goes to stderr.
set -euo pipefail

version=1.21.1
here=$(cd "$(dirname "$0")" && pwd)
cache=${PHIX_VAULT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/phix}
out=$cache/vault-$version

if [[ -x $out ]]; then
	echo "$out"
	exit 0
fi

mkdir -p "$cache"

# Two callers (say CI jobs on one machine) must not both pay for a cold
# build, so the second waits for the first and then finds the binary.
exec 9>"$cache/.vault-$version.lock"
if command -v flock >/dev/null; then
	flock 9
fi
if [[ -x $out ]]; then
	echo "$out"
	exit 0
fi

# Build under a temporary name in the same folder and rename, so a reader
# never sees a half-written binary and an interrupted build leaves none.
tmp=$(mktemp -d "$cache/.vault-$version.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
"$here/build.sh" "$tmp/vault" >&2
mv -f "$tmp/vault" "$out"
echo "$out"
