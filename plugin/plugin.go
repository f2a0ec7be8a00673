// Package plugin owns the behaviour of drone-sauce-connect: it turns the
// validated settings into a Sauce Connect 5 container, waits until the tunnel
// is ready, hands later steps its address and tears it down again.
package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

// Engine is the part of the Docker engine the plugin uses. *engine.Engine
// implements it; unit tests use fakes.
type Engine interface {
	ImageExists(ctx context.Context, ref string) (bool, error)
	PullImage(ctx context.Context, ref string, auth *engine.RegistryAuth, w io.Writer) error
	CreateContainer(ctx context.Context, s engine.ContainerSpec) (string, error)
	StartContainer(ctx context.Context, id string) error
	InspectContainer(ctx context.Context, id string) (engine.Container, error)
	ListContainers(ctx context.Context, labels map[string]string) ([]engine.Summary, error)
	StopContainer(ctx context.Context, id string, timeout time.Duration) (bool, error)
	RemoveContainer(ctx context.Context, id string) error
	ContainerLogs(ctx context.Context, id string, o engine.LogsOptions, stdout, stderr io.Writer) error
	WatchContainer(ctx context.Context, id string) (<-chan engine.Event, <-chan error)
	PathExists(ctx context.Context, id, path string) (bool, error)
	Connect(ctx context.Context, network, id string, aliases []string) error
	Disconnect(ctx context.Context, network, id string) error
	InspectNetwork(ctx context.Context, name string) (engine.Network, error)
	RemoveNetwork(ctx context.Context, name string) error
}

var _ Engine = (*engine.Engine)(nil)

// Options are the plugin's collaborators, injected by main and by tests.
type Options struct {
	// Out receives everything the plugin prints; main passes a masking writer.
	Out io.Writer
	// Masker masks secrets in what the plugin writes to files (logs_file).
	Masker *Masker
	// Log is the plugin's logger, writing to Out.
	Log *logrus.Logger
	// DockerHost is the engine address, for probing a tcp:// engine.
	DockerHost string
	// Now is the clock.
	Now func() time.Time
	// HTTP probes SC's API.
	HTTP *http.Client
}

// newRun fills in the defaults of o.
func newRun(c Config, eng Engine, o Options) *run {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Masker == nil {
		o.Masker = NewMasker(c.Secrets()...)
	}
	if o.HTTP == nil {
		o.HTTP = &http.Client{Timeout: probeRequestTimeout}
	}
	if user, pass, ok := apiBasicAuth(envList(c.Env), c.SCArgs); ok {
		o.HTTP = withBasicAuth(o.HTTP, user, pass)
	}
	return &run{cfg: c, eng: eng, opt: o, log: o.Log.WithField("tunnel", c.TunnelName)}
}

// Exec performs the configured action against the Docker engine.
func Exec(ctx context.Context, c Config, eng Engine, o Options) error {
	p := newRun(c, eng, o)
	switch c.Action {
	case ActionStart:
		_, err := p.start(ctx, false)
		return err
	case ActionRun:
		return p.foreground(ctx)
	case ActionStop:
		return p.stop(ctx)
	case ActionStatus:
		return p.status(ctx)
	default:
		return fmt.Errorf("unknown action %q", c.Action)
	}
}

// run is one execution of the plugin.
type run struct {
	cfg Config
	eng Engine
	opt Options
	log *logrus.Entry
}

// socketPath is the unix socket DOCKER_HOST names, or the default.
func socketPath() string {
	if p, ok := strings.CutPrefix(os.Getenv("DOCKER_HOST"), "unix://"); ok {
		return p
	}
	return "/var/run/docker.sock"
}

// socketDenied says who owns the socket, who the step runs as, and how to
// run the step so that it may use the socket, per platform.
func socketDenied(path string) string {
	owner := "its owner"
	if fi, err := os.Stat(path); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			owner = fmt.Sprintf("uid %d and group %d", st.Uid, st.Gid)
		}
	}
	groups, _ := os.Getgroups()
	return fmt.Sprintf("the socket %s is mounted, but it allows %s, and this step runs as uid %d with groups %v: run the step as root or in that group "+
		"(Drone: remove user: from the step, or set it to root; Harness: runAsUser 0, or add the group; GitHub Actions: a container action runs as root unless its job sets options: --user)",
		path, owner, os.Getuid(), groups)
}

// EngineHint explains how to give the plugin a Docker engine, for errors
// from connecting to one.
func EngineHint(err error, p Pipeline) error {
	if errors.Is(err, engine.ErrDenied) {
		return fmt.Errorf("%w; %s", err, socketDenied(socketPath()))
	}
	if !errors.Is(err, engine.ErrUnreachable) {
		return err
	}
	hint := "mount the Docker socket into the step: Drone: a host volume /var/run/docker.sock (trusted repository); " +
		"Harness Cloud and VM pools mount it already; GitHub Actions: use a Linux runner; or set DOCKER_HOST"
	if p.KubernetesServiceHost != "" {
		hint = "this step runs on Kubernetes, where there is no Docker socket: set backend to kubernetes (or auto) and grant the build pod's service account the Role in the README (\"Kubernetes\")"
	}
	return fmt.Errorf("%w; %s", err, hint)
}
