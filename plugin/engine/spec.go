package engine

import (
	"fmt"
	"net/netip"
	"strconv"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// ContainerSpec is everything the plugin decides about a container, in the
// plugin's own terms. It is plain data: the plugin builds it with a pure
// function and golden-tests it; toCreateOptions turns it into SDK structs.
type ContainerSpec struct {
	Name  string `json:"name"`
	Image string `json:"image"`
	// User runs the container as uid[:gid] when set.
	User string `json:"user,omitempty"`
	// Entrypoint replaces the image's entrypoint when set.
	Entrypoint []string          `json:"entrypoint,omitempty"`
	Cmd        []string          `json:"cmd"`
	Env        []EnvVar          `json:"env"`
	Labels     map[string]string `json:"labels"`
	// Port is the TCP port inside the container that is exposed (0 = none).
	Port int `json:"port,omitempty"`
	// Publish, when set, binds Port on the host.
	Publish *HostPort `json:"publish,omitempty"`
	// NetworkMode is "host", "container:<id>", or empty for networks below
	// (or the engine's default bridge when Networks is empty too).
	NetworkMode string `json:"network_mode,omitempty"`
	// Networks to join; the first is joined at create, the others right after.
	Networks []NetworkAttachment `json:"networks,omitempty"`
	Mounts   []Mount             `json:"mounts,omitempty"`
	// AutoRemove makes the engine remove the container when it exits.
	AutoRemove bool `json:"auto_remove,omitempty"`
	// StopTimeout is the drain a plain `docker stop` or the engine's own
	// shutdown gives the container before SIGKILL (0: the engine's 10 s).
	StopTimeout int `json:"stop_timeout,omitempty"`
	// Files are copied into the container after it is created and before
	// it starts, through the engine's archive API: what they hold appears
	// in no inspect, label, environment or command line.
	Files []File `json:"files,omitempty"`
}

// File is one file put into a container, owned by UID and GID (root's by
// default).
type File struct {
	Path string `json:"path"`
	Mode int64  `json:"mode"`
	UID  int    `json:"uid,omitempty"`
	GID  int    `json:"gid,omitempty"`
	// Content is never printed nor golden-tested: it may be a private key.
	Content []byte `json:"-"`
}

// EnvVar is one environment variable. Secret values are never printed.
type EnvVar struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Secret bool   `json:"secret,omitempty"`
}

// HostPort is a host address and port; Port 0 asks the engine for a free one.
type HostPort struct {
	IP   string `json:"ip"`
	Port int    `json:"port"`
}

// NetworkAttachment joins a network, with DNS aliases on user-defined ones.
type NetworkAttachment struct {
	Network string   `json:"network"`
	Aliases []string `json:"aliases,omitempty"`
}

// Mount is a bind mount from the host.
type Mount struct {
	Source   string `json:"source"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"read_only,omitempty"`
}

// Redacted returns a copy of s whose secret values read "***".
func (s ContainerSpec) Redacted() ContainerSpec {
	env := make([]EnvVar, len(s.Env))
	for i, v := range s.Env {
		if v.Secret {
			v.Value = "***"
		}
		env[i] = v
	}
	s.Env = env
	return s
}

func (s ContainerSpec) apiPort() (network.Port, bool) {
	if s.Port == 0 {
		return network.Port{}, false
	}
	p, err := network.ParsePort(strconv.Itoa(s.Port) + "/tcp")
	return p, err == nil
}

// toCreateOptions translates s into the SDK's create request. The networks
// after the first are joined by connect calls (the engine takes one at create).
func toCreateOptions(s ContainerSpec) (client.ContainerCreateOptions, error) {
	cfg := &container.Config{
		Image:      s.Image,
		User:       s.User,
		Entrypoint: s.Entrypoint,
		Cmd:        s.Cmd,
		Labels:     s.Labels,
	}
	if s.StopTimeout > 0 {
		cfg.StopTimeout = &s.StopTimeout
	}
	for _, v := range s.Env {
		cfg.Env = append(cfg.Env, v.Name+"="+v.Value)
	}
	host := &container.HostConfig{
		// Bounded: a long tunnel with --log-http body must not fill the
		// engine's disk (SC's whole log is what stop saves).
		LogConfig:   container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "20m", "max-file": "3"}},
		NetworkMode: container.NetworkMode(s.NetworkMode),
		AutoRemove:  s.AutoRemove,
	}
	if port, ok := s.apiPort(); ok {
		cfg.ExposedPorts = network.PortSet{port: {}}
		if s.Publish != nil {
			ip, err := netip.ParseAddr(s.Publish.IP)
			if err != nil {
				return client.ContainerCreateOptions{}, fmt.Errorf("publish address %q: %w", s.Publish.IP, err)
			}
			hp := ""
			if s.Publish.Port != 0 {
				hp = strconv.Itoa(s.Publish.Port)
			}
			host.PortBindings = network.PortMap{port: {{HostIP: ip, HostPort: hp}}}
		}
	}
	for _, m := range s.Mounts {
		host.Mounts = append(host.Mounts, mount.Mount{Type: mount.TypeBind, Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly})
	}
	var netcfg *network.NetworkingConfig
	if len(s.Networks) > 0 {
		first := s.Networks[0]
		if s.NetworkMode == "" {
			host.NetworkMode = container.NetworkMode(first.Network)
		}
		netcfg = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			first.Network: {Aliases: first.Aliases},
		}}
	}
	return client.ContainerCreateOptions{Name: s.Name, Config: cfg, HostConfig: host, NetworkingConfig: netcfg}, nil
}
