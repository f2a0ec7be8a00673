package engine

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/storage"
)

// TestToCreateOptions: the spec's terms become the SDK's request; the
// networks after the first are joined by connect calls.
func TestToCreateOptions(t *testing.T) {
	s := ContainerSpec{
		Name: "sc", Image: "sc:5", User: "1000", Entrypoint: []string{"/bin/x"}, Cmd: []string{"run"},
		Env: []EnvVar{{Name: "A", Value: "1"}, {Name: "SECRET", Value: "s", Secret: true}}, Labels: map[string]string{"l": "v"},
		Port: 8032, Publish: &HostPort{IP: "127.0.0.1", Port: 0},
		Networks: []NetworkAttachment{{Network: "build", Aliases: []string{"sauce-connect"}}, {Network: "extra"}},
		Mounts:   []Mount{{Source: "/h", Target: "/c", ReadOnly: true}}, AutoRemove: true,
	}
	o, err := toCreateOptions(s)
	if err != nil {
		t.Fatal(err)
	}
	if o.Name != "sc" || o.Config.Image != "sc:5" || o.Config.User != "1000" || !cmp.Equal(o.Config.Entrypoint, []string{"/bin/x"}) ||
		!cmp.Equal([]string(o.Config.Cmd), []string{"run"}) || !cmp.Equal(o.Config.Env, []string{"A=1", "SECRET=s"}) {
		t.Errorf("config: %+v", o.Config)
	}
	port, _ := network.ParsePort("8032/tcp")
	if _, ok := o.Config.ExposedPorts[port]; !ok || o.HostConfig.PortBindings[port][0].HostPort != "" ||
		o.HostConfig.PortBindings[port][0].HostIP != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("port: exposed %v, bindings %v", o.Config.ExposedPorts, o.HostConfig.PortBindings)
	}
	if o.HostConfig.NetworkMode != "build" || len(o.NetworkingConfig.EndpointsConfig) != 1 ||
		!cmp.Equal(o.NetworkingConfig.EndpointsConfig["build"].Aliases, []string{"sauce-connect"}) {
		t.Errorf("networks: mode %s, endpoints %v", o.HostConfig.NetworkMode, o.NetworkingConfig.EndpointsConfig)
	}
	if !o.HostConfig.AutoRemove || len(o.HostConfig.Mounts) != 1 || !o.HostConfig.Mounts[0].ReadOnly || o.HostConfig.LogConfig.Type != "json-file" {
		t.Errorf("host config: %+v", o.HostConfig)
	}
	if _, err := toCreateOptions(ContainerSpec{Port: 1, Publish: &HostPort{IP: "localhost"}}); err == nil {
		t.Error("a publish address that is no IP was accepted")
	}
}

// TestFromInspect: the inspect answer becomes the plugin's Container.
func TestFromInspect(t *testing.T) {
	port, _ := network.ParsePort("8032/tcp")
	udp, _ := network.ParsePort("53/udp")
	r := container.InspectResponse{
		ID: "abc", Name: "/sc", Image: "sha256:img",
		Config:     &container.Config{Image: "sc:5", Labels: map[string]string{"l": "v"}, Env: []string{"A=1"}, Cmd: []string{"run"}},
		State:      &container.State{Status: "running", Running: true, StartedAt: "2026-11-28T12:00:00.5Z", Health: &container.Health{Status: "healthy"}},
		HostConfig: &container.HostConfig{NetworkMode: "build", AutoRemove: true},
		NetworkSettings: &container.NetworkSettings{
			Networks: map[string]*network.EndpointSettings{"build": {NetworkID: "n1", IPAddress: netip.MustParseAddr("172.20.0.2"), Aliases: []string{"sauce-connect"}}, "nil": nil},
			Ports:    network.PortMap{port: {{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: "49153"}}, udp: {{HostPort: "53"}}},
		},
		Mounts:      []container.MountPoint{{Source: "/var/run/docker.sock", Destination: "/var/run/docker.sock"}},
		GraphDriver: &storage.DriverData{Data: map[string]string{"UpperDir": "/var/lib/docker/overlay2/x/diff"}},
	}
	c := fromInspect(r)
	if c.ID != "abc" || c.Name != "sc" || c.Image != "sc:5" || c.ImageID != "sha256:img" || c.UpperDir != "/var/lib/docker/overlay2/x/diff" ||
		!c.State.Running || c.State.StartedAt.IsZero() || c.NetworkMode != "build" || !c.AutoRemove ||
		!cmp.Equal(c.Env, []string{"A=1"}) || !cmp.Equal(c.Cmd, []string{"run"}) || c.Mounts["/var/run/docker.sock"] != "/var/run/docker.sock" {
		t.Errorf("container: %+v", c)
	}
	if len(c.Networks) != 1 || c.Networks["build"].IP != "172.20.0.2" || c.Networks["build"].Gateway != "" {
		t.Errorf("networks: %+v", c.Networks)
	}
	if !cmp.Equal(c.HostPorts, map[int][]HostPort{8032: {{IP: "127.0.0.1", Port: 49153}}}) {
		t.Errorf("host ports (TCP only): %+v", c.HostPorts)
	}
}
