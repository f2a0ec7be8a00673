// Package backend picks where the tunnel runs (the backend setting: auto,
// docker or kubernetes), connects to it and performs the action there.
package backend

import (
	"context"
	"errors"
	"fmt"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/docker"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/kube"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/kubernetes"
)

// Connectors connect to what can run the tunnel; main passes the real ones.
type Connectors struct {
	// Docker connects to the engine named by DOCKER_HOST (engine.NewEnv).
	Docker func(ctx context.Context) (*engine.Engine, error)
	// Kubernetes connects with the pod's service account (kube.InCluster)
	// and returns its namespace.
	Kubernetes func() (*kube.Client, string, error)
}

// Run performs the configured action on the chosen backend. auto takes
// Docker when an engine answers, else Kubernetes when the plugin runs in a
// pod, else fails naming both.
func Run(ctx context.Context, c plugin.Config, conn Connectors, o plugin.Options) error {
	if c.Action == plugin.ActionNone {
		if o.Log != nil {
			o.Log.Info("post step: nothing to clean up (this step's action starts no tunnel)")
		}
		return nil
	}
	b, closeFn, err := Open(ctx, c, conn, o)
	if err != nil {
		return err
	}
	defer closeFn()
	return plugin.Perform(ctx, c, b)
}

// Open connects to the backend the settings choose and returns it, with a
// func that releases the connection.
func Open(ctx context.Context, c plugin.Config, conn Connectors, o plugin.Options) (plugin.Backend, func(), error) {
	s := plugin.NewSession(c, o)
	if c.Backend != plugin.BackendKubernetes {
		eng, err := conn.Docker(ctx)
		switch {
		case err == nil:
			s.Log.Debugf("docker engine %s, API %s", eng.Host, eng.APIVersion)
			return docker.New(s, eng, eng.Host), func() { _ = eng.Close() }, nil
		case c.Backend == plugin.BackendDocker || !errors.Is(err, engine.ErrUnreachable):
			return nil, nil, docker.EngineHint(err, c.Pipeline)
		}
		kc, ns, kerr := conn.Kubernetes()
		if errors.Is(kerr, kube.ErrNotInCluster) {
			return nil, nil, fmt.Errorf("%w; or run the step in a Kubernetes pod with a service account (backend kubernetes)", docker.EngineHint(err, c.Pipeline))
		}
		if kerr != nil {
			return nil, nil, kerr
		}
		s.Log.Info("no Docker engine; running the tunnel as a Kubernetes pod")
		b, err := kubernetes.New(s, kc, ns)
		return b, func() {}, err
	}
	kc, ns, err := conn.Kubernetes()
	if err != nil {
		return nil, nil, fmt.Errorf("backend kubernetes: %w", err)
	}
	b, err := kubernetes.New(s, kc, ns)
	return b, func() {}, err
}
