#!/usr/bin/env bash
# Builds the real CI runners and engines the end-to-end tests drive into
# testdata/runner-tools/bin, once per version: a stamp file records what is
# there, so later runs cost nothing.
#   drone              drone-cli, for `drone exec` (drone-runner-docker's engine)
#   act                nektos/act, the local GitHub Actions runner
#   lite-engine        harness/lite-engine, the engine that runs Harness Cloud's steps
#   drone-runner-kube  Drone's Kubernetes runner, for `drone-runner-kube exec`
set -euo pipefail
cd "$(dirname "$0")"
DRONE_CLI=v1.8.0
ACT=v0.2.89
LITE_ENGINE=v0.0.2-0.20220223100350-d462b20d1a43
RUNNER_KUBE=v1.0.0-rc.5
stamp="bin/.built-drone-$DRONE_CLI-act-$ACT-lite-engine-$LITE_ENGINE-runner-kube-$RUNNER_KUBE"
if [ -f "$stamp" ]; then exit 0; fi
mkdir -p bin
export CGO_ENABLED=0
echo "building drone-cli $DRONE_CLI, act $ACT, lite-engine $LITE_ENGINE and drone-runner-kube $RUNNER_KUBE (a few minutes when cold)"
# drone-cli's dependency graph holds modules the checksum database does not
# know, and its go.mod needs -mod=mod (see go.mod here).
GONOSUMDB=github.com/drone,github.com/drone-runners GOFLAGS=-mod=mod \
  bash -c 'go mod tidy >/dev/null 2>&1 || go mod download; go build -trimpath -ldflags="-s -w" -o bin/drone github.com/drone/drone-cli/drone'
GOFLAGS= GOBIN="$PWD/bin" go install -trimpath -ldflags="-s -w" "github.com/nektos/act@$ACT"
# lite-engine's and drone-runner-kube's go.mod files hold replace directives
# (or need their own go.sum), which `go install module@version` refuses: each
# builds as its own main module, in the module cache's read-only copy.
build_module() { # module version binary
  local dir
  dir=$(GOFLAGS= go mod download -json "$1@$2" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -n "$dir" ] || { echo "go mod download $1@$2 gave no folder" >&2; return 1; }
  (cd "$dir" && GOFLAGS= GONOSUMDB=github.com/drone,github.com/drone-runners,github.com/harness \
    go build -trimpath -ldflags="-s -w" -o "$OLDPWD/bin/$3" .)
}
build_module github.com/harness/lite-engine "$LITE_ENGINE" lite-engine
build_module github.com/drone-runners/drone-runner-kube "$RUNNER_KUBE" drone-runner-kube
rm -f bin/.built-*
touch "$stamp"
