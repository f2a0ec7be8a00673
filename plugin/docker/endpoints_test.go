package docker

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

func TestResolveEndpoints(t *testing.T) {
	c := plugin.Config{APIPort: 8032, NetworkAlias: "sauce-connect", APIBind: "127.0.0.1"}
	onNet := engine.Container{Networks: map[string]engine.Endpoint{"drone-x": {IP: "172.20.0.9", Aliases: []string{"sauce-connect"}}}}
	published := engine.Container{Networks: map[string]engine.Endpoint{"bridge": {IP: "172.17.0.9"}}, HostPorts: map[int][]engine.HostPort{8032: {{IP: "127.0.0.1", Port: 49153}}}}
	step := &engine.Container{Networks: map[string]engine.Endpoint{"drone-x": {IP: "172.20.0.2", Gateway: "172.20.0.1"}}}
	for _, tc := range []struct {
		name       string
		owner      *engine.Container
		sc         engine.Container
		dockerHost string
		want       plugin.Endpoints
	}{
		{"step and SC share the build network", step, onNet, "unix:///var/run/docker.sock", plugin.Endpoints{Probe: "http://172.20.0.9:8032", Container: "http://sauce-connect:8032"}},
		{"host plugin probes the published port", nil, published, "unix:///var/run/docker.sock", plugin.Endpoints{Probe: "http://127.0.0.1:49153", Container: "http://172.17.0.9:8032", Host: "http://127.0.0.1:49153"}},
		{"remote engine: every step reaches SC at its address", nil, published, "tcp://10.1.2.3:2375", plugin.Endpoints{Probe: "http://10.1.2.3:49153", Container: "http://10.1.2.3:49153", Host: "http://10.1.2.3:49153"}},
		{"dind service: at its name", nil, published, "tcp://docker:2376", plugin.Endpoints{Probe: "http://docker:49153", Container: "http://docker:49153", Host: "http://docker:49153"}},
		{"dind in the build pod: at localhost", nil, published, "tcp://localhost:2375", plugin.Endpoints{Probe: "http://localhost:49153", Container: "http://localhost:49153", Host: "http://localhost:49153"}},
		{"the plugin as a container of a tcp engine: as on a socket", step, onNet, "tcp://127.0.0.1:2376", plugin.Endpoints{Probe: "http://172.20.0.9:8032", Container: "http://sauce-connect:8032"}},
		{"SC in host mode, step on a bridge: via the gateway", step, engine.Container{NetworkMode: "host"}, "unix:///var/run/docker.sock", plugin.Endpoints{Probe: "http://172.20.0.1:8032", Host: "http://127.0.0.1:8032"}},
		{"SC in host mode on a host port", nil, engine.Container{NetworkMode: "host", Env: []string{"SAUCE_API_ADDRESS=127.0.0.1:41000"}}, "unix:///var/run/docker.sock", plugin.Endpoints{Probe: "http://127.0.0.1:41000", Host: "http://127.0.0.1:41000"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, resolveEndpoints(c, tc.owner, tc.sc, tc.dockerHost)); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}
