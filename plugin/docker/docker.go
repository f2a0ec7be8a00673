// Package docker is the Docker backend: it runs Sauce Connect 5 as a sibling
// container through the engine the plugin reaches, waits until the tunnel
// is ready, and guards it with a watchdog that removes it when the pipeline
// ends.
//
// A start reads top down, and each file builds only on those below it:
//
//	start.go     Start, Run: one listing, locate, reuse or create, retries
//	attempt.go   one SC container: create, watchdog, wait until ready
//	reap.go      the watchdog at work (the binary's reap command)
//	watchdog.go  the watchdog's container and what it guards
//	spec.go      settings and placement → SC's container spec (pure)
//	reuse.go     joining a tunnel another step started
//	status.go    action status
//	place.go     the site → how SC attaches to the world (pure)
//	endpoints.go SC's API addresses from its inspected state (pure)
//	site.go      locate: where the plugin runs, as the engine sees it
//	stop.go      Stop, and SC's graceful end
//	self.go      which container the plugin itself runs in
//	tunnel.go    an SC container as found: labels, state, Sauce ID, removal
//	ready.go     an SC container as a plugin.ReadyTarget
//	image.go, hints.go, docker.go: the image, engine hints, the backend and
//	what the process reads of itself
package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

// Engine is the part of the Docker engine the plugin uses. *engine.Engine
// implements it; unit tests use fakes.
type Engine interface {
	InspectImage(ctx context.Context, ref string) (engine.Image, error)
	PullImage(ctx context.Context, ref, username, password string, w io.Writer) error
	CreateContainer(ctx context.Context, s engine.ContainerSpec) (string, error)
	StartContainer(ctx context.Context, id string) error
	InspectContainer(ctx context.Context, id string) (engine.Container, error)
	ListContainers(ctx context.Context, labels map[string]string) ([]engine.Summary, error)
	StopContainer(ctx context.Context, id string, timeout time.Duration) (bool, error)
	RemoveContainer(ctx context.Context, id string) error
	ContainerLogs(ctx context.Context, id string, o engine.LogsOptions, stdout, stderr io.Writer) error
	WatchContainer(ctx context.Context, id string) (<-chan engine.Event, <-chan error)
	PathExists(ctx context.Context, id, path string) (bool, error)
	PutFiles(ctx context.Context, id string, files []engine.File) error
	ReadFile(ctx context.Context, id, path string) ([]byte, error)
	Connect(ctx context.Context, network, id string, aliases []string) error
	Disconnect(ctx context.Context, network, id string) error
	InspectNetwork(ctx context.Context, name string) (engine.Network, error)
	RemoveNetwork(ctx context.Context, name string) error
}

var _ Engine = (*engine.Engine)(nil)

// New returns the Docker backend for session s on engine eng, reached as
// access says (a tcp:// engine is probed there, and the watchdog reaches
// it the same way).
func New(s *plugin.Session, eng Engine, access engine.Access) plugin.Backend {
	return &backend{s: s, cfg: s.Cfg, log: s.Log, eng: eng, access: access, here: readProcSelf}
}

// backend is SC as a sibling container on the engine the plugin reaches,
// with a watchdog beside it. Its configuration is the session's, read
// only.
type backend struct {
	s      *plugin.Session
	cfg    plugin.Config
	log    *logrus.Entry
	eng    Engine
	access engine.Access
	// here is what the process reads of itself to find its container.
	here func() procSelf
}

// procSelf is what this process reads of itself to guess its container.
type procSelf struct {
	mountinfo, cgroup, hostname string
	// marker writes a file only this process has; it returns its path
	// (none: "") and a func that removes it.
	marker func() (string, func())
}

// readProcSelf reads the running process's own.
func readProcSelf() procSelf {
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	cg, _ := os.ReadFile("/proc/self/cgroup")
	hn, _ := os.Hostname()
	return procSelf{mountinfo: string(mi), cgroup: string(cg), hostname: hn, marker: writeMarker}
}

// writeMarker leaves an empty file of a random name in the container's own
// filesystem (not on a volume another container could share) and returns
// its path and a func that removes it; "" when no directory is writable.
func writeMarker() (string, func()) {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	name := ".drone-sauce-connect-self-" + hex.EncodeToString(b)
	for _, dir := range []string{"/", os.TempDir()} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, nil, 0o600); err == nil {
			return path, func() { _ = os.Remove(path) }
		}
	}
	return "", func() {}
}
