#!/usr/bin/env bash
# Records the Docker engine's answers that locate reads (the container list
# and each container's inspect), for plugin/docker's TestLocateGolden, from
# containers made on a real engine the way each runner makes its step
# containers (their labels, network modes and mounts, as read in the runners'
# sources: drone-runner-docker's engine/compiler, act's pkg/runner, Harness
# lite-engine's tasks/local, GitHub's hosted runner's container actions).
# Run it from the repository's root with an engine up: bash testdata/locate/record.sh
# It removes everything it created; each container carries
# io.drone-sauce-connect.test=locate-record.
set -euo pipefail
cd "$(dirname "$0")"
sock=/var/run/docker.sock
api() { curl -fsS --unix-socket "$sock" "http://docker/v1.41$1"; }
tag=dsc-locate-record:busybox
label=(--label io.drone-sauce-connect.test=locate-record)
dir=$(mktemp -d)
trap 'docker rm -f $(docker ps -aq --filter label=io.drone-sauce-connect.test=locate-record) >/dev/null 2>&1 || true
      docker network rm dsc-rec-drone dsc-rec-act dsc-rec-gh >/dev/null 2>&1 || true
      docker rmi -f $tag >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
cp /bin/busybox "$dir/busybox"
printf 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox","--install","-s","/bin"]\nENV PATH=/bin\n' >"$dir/Dockerfile"
docker build -q -t $tag "$dir" >/dev/null

# save CASE SELF [OTHER...]: the list, and the inspect answers of the named
# containers; SELF is the plugin's own container ("" on the host).
save() {
	local case=$1 self=$2; shift 2
	rm -rf "$case" && mkdir -p "$case"
	api "/containers/json?all=1&filters=$(printf '{"label":["io.drone-sauce-connect.test=locate-record"]}' | jq -sRr @uri)" | jq . >"$case/list.json"
	for c in "$self" "$@"; do
		[ -n "$c" ] || continue
		id=$(docker inspect -f '{{.Id}}' "$c")
		api "/containers/$id/json" | jq . >"$case/$id.json"
	done
	jq -n --arg self "$( [ -n "$self" ] && docker inspect -f '{{.Id}}' "$self")" '{self: $self}' >"$case/proc.json"
}

# Drone (drone-runner-docker): a step on the pipeline's user-defined network,
# its name as alias, io.drone.* labels, the socket as a host volume.
docker network create "${label[@]}" dsc-rec-drone >/dev/null
now=$(date +%s)
docker run -d "${label[@]}" --name dsc-rec-drone-step --network dsc-rec-drone --network-alias sauce \
	--label io.drone=true --label io.drone.build.number=42 --label io.drone.repo.namespace=octo --label io.drone.repo.name=shop \
	--label io.drone.stage.name=default --label io.drone.step.name=sauce --label io.drone.protected=false \
	--label io.drone.created=$now --label io.drone.expires=$((now + 3600)) --label io.drone.ttl=1h0m0s \
	-v $sock:/var/run/docker.sock -e DRONE=true -e DRONE_BUILD_NUMBER=42 $tag sleep 600 >/dev/null
save drone dsc-rec-drone-step
docker rm -f dsc-rec-drone-step >/dev/null

# act: the job container on the job's network; the action's container
# borrows its network namespace (network_mode container:<job>).
docker network create "${label[@]}" dsc-rec-act >/dev/null
docker run -d "${label[@]}" --name dsc-rec-act-job --network dsc-rec-act -v $sock:/var/run/docker.sock $tag sleep 600 >/dev/null
docker run -d "${label[@]}" --name dsc-rec-act-action --network container:dsc-rec-act-job -v $sock:/var/run/docker.sock \
	-e GITHUB_ACTIONS=true $tag sleep 600 >/dev/null
save act dsc-rec-act-action dsc-rec-act-job
docker rm -f dsc-rec-act-action dsc-rec-act-job >/dev/null

# Harness (lite-engine): a Plugin step in the host's network, labelled with
# its stage.
docker run -d "${label[@]}" --name dsc-rec-harness-step --network host --label internal_stage_label=stage-7f3a \
	-v $sock:/var/run/docker.sock -e HARNESS_STAGE_ID=build $tag sleep 600 >/dev/null
save harness dsc-rec-harness-step
docker rm -f dsc-rec-harness-step >/dev/null

# GitHub's hosted runner: a container action, --rm, on the job's network,
# with the runner's instance label (six hex digits).
docker network create "${label[@]}" dsc-rec-gh >/dev/null
docker run -d "${label[@]}" --rm --name dsc-rec-gh-action --network dsc-rec-gh --label 9a1b2c= \
	-v $sock:/var/run/docker.sock -e GITHUB_ACTIONS=true $tag sleep 600 >/dev/null
save github dsc-rec-gh-action
docker rm -f dsc-rec-gh-action >/dev/null

# On the host (a shell runner): no container of its own.
save host ""
echo "recorded: $(ls -d */ | tr '\n' ' ')"
