// Package docker is the Docker backend: it runs Sauce Connect 5 as a sibling
// container through the engine the plugin reaches, waits until the tunnel
// is ready, and guards it with a watchdog that removes it when the pipeline
// ends.
package docker

import (
	"context"
	"io"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

// Engine is the part of the Docker engine the plugin uses. *engine.Engine
// implements it; unit tests use fakes.
type Engine interface {
	InspectImage(ctx context.Context, ref string) (engine.Image, error)
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
	return &backend{s: s, cfg: s.Cfg, log: s.Log, eng: eng, access: access}
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
}
