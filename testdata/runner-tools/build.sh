#!/usr/bin/env bash
# Builds the real CI runners the end-to-end tests drive into
# testdata/runner-tools/bin, once per version: a stamp file records what is
# there, so later runs cost nothing.
#   drone  drone-cli, for `drone exec` (drone-runner-docker's engine)
#   act    nektos/act, the local GitHub Actions runner
set -euo pipefail
cd "$(dirname "$0")"
DRONE_CLI=v1.8.0
ACT=v0.2.89
stamp="bin/.built-drone-$DRONE_CLI-act-$ACT"
if [ -f "$stamp" ]; then exit 0; fi
mkdir -p bin
export CGO_ENABLED=0
echo "building drone-cli $DRONE_CLI and act $ACT (a few minutes when cold)"
# drone-cli's dependency graph holds modules the checksum database does not
# know, and its go.mod needs -mod=mod (see go.mod here).
GONOSUMDB=github.com/drone,github.com/drone-runners GOFLAGS=-mod=mod \
  bash -c 'go mod tidy >/dev/null 2>&1 || go mod download; go build -trimpath -ldflags="-s -w" -o bin/drone github.com/drone/drone-cli/drone'
GOFLAGS= GOBIN="$PWD/bin" go install -trimpath -ldflags="-s -w" "github.com/nektos/act@$ACT"
rm -f bin/.built-*
touch "$stamp"
