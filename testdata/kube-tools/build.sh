#!/usr/bin/env bash
# Builds the test cluster into testdata/kube-tools/bin, once per version: a
# stamp file records what is there, so later runs cost nothing.
#   control plane: etcd, kube-apiserver, kube-controller-manager
#   node:          kubelet, kube-scheduler, kube-proxy (the real-node tier)
set -euo pipefail
cd "$(dirname "$0")"
K8S=v1.34.4
ETCD=v3.6.4
mkdir -p bin
export GOFLAGS=-mod=mod CGO_ENABLED=0
ld="-s -w -X k8s.io/component-base/version.gitVersion=$K8S -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=34"
stamp="bin/.built-$K8S-$ETCD"
if [ ! -f "$stamp" ]; then
  go mod tidy >/dev/null 2>&1 || go mod download
  echo "building etcd $ETCD, kube-apiserver and kube-controller-manager $K8S (a few minutes when cold)"
  go build -trimpath -ldflags="-s -w" -o bin/etcd go.etcd.io/etcd/server/v3
  go build -trimpath -ldflags="$ld" -o bin/kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
  go build -trimpath -ldflags="$ld" -o bin/kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
  touch "$stamp"
fi
stamp="bin/.built-node-$K8S"
if [ ! -f "$stamp" ]; then
  echo "building kubelet, kube-scheduler and kube-proxy $K8S"
  go build -trimpath -ldflags="$ld" -o bin/kubelet k8s.io/kubernetes/cmd/kubelet
  go build -trimpath -ldflags="$ld" -o bin/kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler
  go build -trimpath -ldflags="$ld" -o bin/kube-proxy k8s.io/kubernetes/cmd/kube-proxy
  touch "$stamp"
fi
