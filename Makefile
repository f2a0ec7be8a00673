# drone-sauce-connect — run `make help` for the targets.
SHELL      := /bin/bash
BIN        := release/linux/amd64/bin/drone-sauce-connect
IMAGE      ?= drone-sauce-connect:dev
STANDIN    ?= dsc-standin:demo
# What a build is stamped with: the version (the tag, else dev), the commit
# and the commit's time, so that the same commit builds the same bytes.
VERSION    ?= $(or $(shell git describe --tags --exact-match 2>/dev/null | sed 's/^v//'),dev)
COMMIT     ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
DATE       ?= $(shell git log -1 --format=%cI 2>/dev/null || echo 1970-01-01T00:00:00Z)
LDFLAGS    := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)
GOFLAGS_BUILD := -trimpath -buildvcs=false -ldflags='$(LDFLAGS)'
TEST_TIMEOUT  ?= 20m
# The classic builder builds FROM scratch with no registry at all.
# Its deprecation notice goes to a file, shown only when the build fails.
DOCKER_BUILD := DOCKER_BUILDKIT=0 docker build --quiet --label io.drone-sauce-connect.test=true

.PHONY: help build release test deps kube-tools runner-tools test-unit image standin demo lint tidy bench faults fuzz clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build the static plugin binary (and its post-step name) into release/linux/amd64/bin
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build $(GOFLAGS_BUILD) -o $(BIN) ./cmd/drone-sauce-connect
	ln -sf drone-sauce-connect $(dir $(BIN))drone-sauce-connect-post

test: deps kube-tools runner-tools ## run every test: unit, integration and end-to-end (real Docker engine, real runners (drone exec, act, lite-engine, drone-runner-kube), real Kubernetes API server and a real kubelet, a second engine over TLS); ends naming any tier it skipped
	@skipped=$$(mktemp); rc=0; \
	echo "go test -count=1 -timeout $(TEST_TIMEOUT) ./..."; \
	DSC_SKIPPED=$$skipped go test -count=1 -timeout $(TEST_TIMEOUT) ./... || rc=$$?; \
	if [ -s $$skipped ]; then \
	  echo "== test tiers skipped (run 'sudo bash .ci/deps' and make test again as root, or set CI=true to fail instead):"; \
	  sort -u $$skipped | sed 's/^/  - /'; \
	fi; rm -f $$skipped; exit $$rc

deps: ## install what the test tiers need from Debian's packages (as root; otherwise it names them)
	@bash .ci/deps

kube-tools: ## build the test cluster (etcd, kube-apiserver, kube-controller-manager; kubelet, kube-scheduler, kube-proxy) once, from the Go module proxy
	@bash testdata/kube-tools/build.sh

release: ## build linux/amd64 and linux/arm64 and assemble the multi-arch OCI index in release/oci (offline, reproducible)
	@for arch in amd64 arm64; do \
	  CGO_ENABLED=0 GOOS=linux GOARCH=$$arch go build $(GOFLAGS_BUILD) -o release/linux/$$arch/bin/drone-sauce-connect ./cmd/drone-sauce-connect && \
	  ln -sf drone-sauce-connect release/linux/$$arch/bin/drone-sauce-connect-post || exit 1; \
	done
	go run ./cmd/dsc-release -version $(VERSION) -revision $(COMMIT) -created $(DATE) -bin release -out release/oci $(if $(PUSH),-push $(PUSH))

runner-tools: ## build the real CI runners and engines the end-to-end tests drive (drone exec, act, lite-engine, drone-runner-kube) once, from the Go module proxy
	@bash testdata/runner-tools/build.sh

test-unit: ## run the unit tests only (no Docker needed)
	go test -count=1 -short ./...

image: build ## build the plugin image offline: make image IMAGE=<ref>
	@$(DOCKER_BUILD) -f docker/Dockerfile.linux.amd64 -t $(IMAGE) . >/dev/null 2>/tmp/dsc-build.err || { cat /tmp/dsc-build.err; exit 1; }
	@docker image inspect $(IMAGE) --format 'built {{index .RepoTags 0}}: {{.Size}} bytes'

standin: ## build the stand-in Sauce Connect 5 image offline (STANDIN=<ref>)
	@dir=$$(mktemp -d) && trap 'rm -rf $$dir' EXIT && \
	CGO_ENABLED=0 go build $(GOFLAGS_BUILD) -o $$dir/sc ./testdata/sc-standin && \
	cp testdata/sc-standin/Dockerfile $$dir/ && \
	{ $(DOCKER_BUILD) -t $(STANDIN) $$dir >/dev/null 2>$$dir/err || { cat $$dir/err; exit 1; }; } && \
	echo "built $(STANDIN)"

demo: build ## start a tunnel, show it ready, stop it (offline stand-in unless SAUCE_USERNAME/SAUCE_ACCESS_KEY are set)
	@set -e; \
	if [ -n "$$SAUCE_USERNAME" ] && [ -n "$$SAUCE_ACCESS_KEY" ]; then \
	  echo "== real Sauce Connect 5 (the image setting's default) with your credentials"; \
	else \
	  echo "== no Sauce credentials: using the offline stand-in"; $(MAKE) --no-print-directory standin; \
	  export PLUGIN_IMAGE=$(STANDIN) PLUGIN_PULL=never SAUCE_USERNAME=demo SAUCE_ACCESS_KEY=demo-access-key-000 PLUGIN_REGION=$${PLUGIN_REGION:-us-west} \
	    PLUGIN_REST_CONFIRM=false PLUGIN_REST_URL=http://127.0.0.1:9; \
	  trap 'docker image rm -f $(STANDIN) >/dev/null 2>&1 || true' EXIT; \
	fi; \
	export PLUGIN_TUNNEL_NAME=demo-$$(date +%s) PLUGIN_API_HOST_PORT=0; \
	echo "== start"; ./$(BIN); \
	echo "== status"; PLUGIN_ACTION=status ./$(BIN); \
	echo "== stop";   PLUGIN_ACTION=stop ./$(BIN)

BENCH_N ?= 20
BENCH_LEVELS ?= 1,5,10,25
bench: kube-tools ## measure engine API calls per start and stop, detection latency, overhead, stop, time to ready vs the seed, sizes, RSS (BENCH_N runs), the concurrency sweep (BENCH_LEVELS), and the Kubernetes backend on a real kubelet
	go run ./cmd/dsc-bench -n $(BENCH_N) -levels $(BENCH_LEVELS)

faults: ## run the fault matrix against the real engine and print its table
	@out=$$(mktemp); rc=0; \
	go test -count=1 -run 'TestFaults$$' -v ./cmd/drone-sauce-connect >$$out 2>&1 || rc=$$?; \
	awk '/^\|/ {sub(/^ +/, ""); print; next} /^ +\|/ {sub(/^ +/, ""); print}' $$out; \
	grep -E '^(--- FAIL|FAIL|ok)' $$out || true; rm -f $$out; exit $$rc

FUZZTIME ?= 20s
fuzz: ## run each fuzz target for FUZZTIME (settings parsing, masking writer)
	go test ./plugin -run '^$$' -fuzz '^FuzzSettings$$' -fuzztime $(FUZZTIME)
	go test ./plugin -run '^$$' -fuzz '^FuzzMaskWriter$$' -fuzztime $(FUZZTIME)

lint: ## go vet and gofmt
	go vet ./...
	@test -z "$$(gofmt -l .)" || { gofmt -l .; exit 1; }

tidy: ## go mod tidy
	go mod tidy

clean: ## remove build output
	rm -rf release
