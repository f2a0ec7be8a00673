package docker

import (
	"testing"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"

	"github.com/google/go-cmp/cmp"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

func TestPlace(t *testing.T) {
	drone := plugin.Pipeline{Drone: "true", DroneBuildNumber: "1"}
	github := plugin.Pipeline{GitHubActions: "true"}
	droneStep := &engine.Container{NetworkMode: "drone-x", Networks: map[string]engine.Endpoint{"drone-x": {IP: "172.20.0.2"}}}
	bridgeStep := &engine.Container{NetworkMode: "default", Networks: map[string]engine.Endpoint{"bridge": {IP: "172.17.0.5"}}}
	hostStep := &engine.Container{NetworkMode: "host"}
	pub := &engine.HostPort{IP: "127.0.0.1", Port: 8032}
	alias := func(n string) []engine.NetworkAttachment {
		return []engine.NetworkAttachment{{Network: n, Aliases: []string{"sauce-connect"}}}
	}
	for _, tc := range []struct {
		name  string
		c     plugin.Config
		owner *engine.Container
		want  placement
	}{
		{"on the host", plugin.Config{Publish: "auto"}, nil, placement{Publish: pub}},
		{"drone step on its build network: alias, no host port", plugin.Config{Publish: "auto", Pipeline: drone}, droneStep, placement{Networks: alias("drone-x")}},
		{"drone step, publish always", plugin.Config{Publish: "always", Pipeline: drone}, droneStep, placement{Networks: alias("drone-x"), Publish: pub}},
		{"default bridge takes no alias: publish", plugin.Config{Publish: "auto", Pipeline: drone}, bridgeStep, placement{Publish: pub}},
		{"step in host network mode", plugin.Config{Publish: "auto", Pipeline: drone}, hostStep, placement{Publish: pub}},
		{"network_mode host: the API on a host port", plugin.Config{Publish: "auto", NetworkMode: "host"}, nil, placement{NetworkMode: "host", APIPort: 8032}},
		{"github job on the runner: the runner's network, as Sauce's action", plugin.Config{Publish: "auto", Pipeline: github}, bridgeStep, placement{NetworkMode: "host", APIPort: 8032}},
		{"act: the job container's host network", plugin.Config{Publish: "auto", Pipeline: github}, hostStep, placement{NetworkMode: "host", APIPort: 8032}},
		{"github job on the runner, network_mode bridge", plugin.Config{Publish: "auto", NetworkMode: "bridge", Pipeline: github}, bridgeStep, placement{Publish: pub}},
		{"extra network", plugin.Config{Publish: "never", Network: "qa", Pipeline: drone}, droneStep, placement{Networks: append(alias("drone-x"), alias("qa")...)}},
		{"github job network publishes too", plugin.Config{Publish: "auto", Pipeline: github}, droneStep, placement{Networks: alias("drone-x"), Publish: pub}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.c.NetworkAlias, tc.c.APIBind, tc.c.APIHostPort = "sauce-connect", "127.0.0.1", 8032
			if diff := cmp.Diff(tc.want, attachments(tc.c, tc.owner)); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestPublishForRemoteEngine(t *testing.T) {
	for _, tc := range []struct {
		host  string
		owner *engine.Container
		bind  string
		want  string
	}{
		{"tcp://docker:2376", nil, "127.0.0.1", "0.0.0.0"},
		{"tcp://10.1.2.3:2375", nil, "127.0.0.1", "0.0.0.0"},
		{"tcp://docker:2376", nil, "10.9.9.9", "10.9.9.9"},
		{"tcp://localhost:2375", nil, "127.0.0.1", "127.0.0.1"},
		{"tcp://127.0.0.1:2376", nil, "127.0.0.1", "127.0.0.1"},
		{"tcp://docker:2376", &engine.Container{ID: "self"}, "127.0.0.1", "127.0.0.1"},
		{"unix:///var/run/docker.sock", nil, "127.0.0.1", "127.0.0.1"},
	} {
		pl := placement{Publish: &engine.HostPort{IP: tc.bind, Port: 8032}}
		_, changed := publishForRemoteEngine(&pl, tc.host, tc.owner)
		if pl.Publish.IP != tc.want || changed != (tc.want != tc.bind) {
			t.Errorf("%s (plugin a container of it: %v), api_bind %s: published on %s, want %s", tc.host, tc.owner != nil, tc.bind, pl.Publish.IP, tc.want)
		}
	}
}
