package docker

import (
	"testing"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"

	"github.com/google/go-cmp/cmp"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

func TestGuardOf(t *testing.T) {
	drone := plugin.Config{Pipeline: plugin.Pipeline{Drone: "true"}}
	github := plugin.Config{Pipeline: plugin.Pipeline{GitHubActions: "true"}}
	step := &engine.Container{ID: "step", Networks: map[string]engine.Endpoint{"drone-x": {}}}
	rmStep := &engine.Container{ID: "rm", AutoRemove: true, Networks: map[string]engine.Endpoint{"bridge": {}}}
	job := &engine.Container{ID: "job", NetworkMode: "host"}
	inJob := &engine.Container{ID: "action", NetworkMode: "container:job"}
	onBridge := &engine.Container{ID: "action", NetworkMode: "default", Networks: map[string]engine.Endpoint{"bridge": {}}}
	joined := placement{Networks: []engine.NetworkAttachment{{Network: "drone-x"}, {Network: "user-net"}}}
	for _, tc := range []struct {
		name        string
		c           plugin.Config
		self, owner *engine.Container
		pl          placement
		want        guard
	}{
		{"drone step: its own container, and the build network", drone, step, step, joined, guard{Anchor: "step", Networks: []string{"drone-x"}}},
		{"act: the job container whose namespace it borrows", github, inJob, job, placement{}, guard{Anchor: "job"}},
		{"act self-hosted: removed after its step", github, onBridge, onBridge, placement{}, guard{}},
		{"--rm container", drone, rmStep, rmStep, placement{}, guard{}},
		{"on the host or unproven", drone, nil, nil, placement{}, guard{}},
	} {
		if got := guardOf(tc.c, tc.self, tc.owner, tc.pl); !cmp.Equal(got, tc.want) {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
