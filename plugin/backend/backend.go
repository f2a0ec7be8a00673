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
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/kubeapi"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/kubernetes"
)

// errNotInCluster means the plugin does not run in a Kubernetes pod.
var errNotInCluster = kubeapi.ErrNotInCluster

// Connectors open each backend for a session. Docker fails with an error
// that wraps engine.ErrUnreachable when no engine answers (then auto tries
// Kubernetes), Kubernetes with errNotInCluster outside a pod. Real connects
// to the real ones; tests pass fakes.
type Connectors struct {
	Docker     func(ctx context.Context, s *plugin.Session) (plugin.Backend, func(), error)
	Kubernetes func(s *plugin.Session) (plugin.Backend, error)
}

// Real connects to the Docker engine named by DOCKER_HOST, and to
// Kubernetes with the pod's service account.
var Real = Connectors{
	Docker: func(ctx context.Context, s *plugin.Session) (plugin.Backend, func(), error) {
		eng, err := engine.NewEnv(ctx)
		if err != nil {
			return nil, nil, err
		}
		s.Log.Debugf("docker engine %s, API %s", eng.Host, eng.APIVersion)
		eng.OnRetry = docker.RetryWarning(s.Log)
		return docker.New(s, eng, eng.Access), func() { _ = eng.Close() }, nil
	},
	Kubernetes: func(s *plugin.Session) (plugin.Backend, error) {
		kc, ns, err := kubeapi.InCluster()
		if err != nil {
			return nil, err
		}
		return kubernetes.New(s, kc, ns)
	},
}

// Act performs the configured action on the chosen backend.
func Act(ctx context.Context, c plugin.Config, conn Connectors, o plugin.Options) error {
	s := plugin.NewSession(c, o)
	if c.Action == plugin.ActionNone {
		s.Log.Info("post step: nothing to clean up (this step's action starts no tunnel)")
		return nil
	}
	if c.Action == plugin.ActionWait {
		ctx, cancel := plugin.ReadyBy(ctx, c)
		defer cancel()
		return wait(ctx, s, conn)
	}
	b, closeFn, err := open(ctx, s, conn)
	if err != nil {
		return err
	}
	defer closeFn()
	return plugin.Perform(ctx, c, b)
}

// waiter is a backend that can follow the pipeline's own SC (Kubernetes).
type waiter interface {
	Wait(ctx context.Context) (*plugin.Tunnel, error)
}

// wait is action wait. It needs no Docker engine: SC is the pipeline's own.
// In a pod, the Kubernetes backend also follows SC's container in the build
// pod, so that a failed SC fails the step at once; elsewhere the plugin
// only asks SC's API.
func wait(ctx context.Context, s *plugin.Session, conn Connectors) error {
	if s.Cfg.Backend != plugin.BackendDocker {
		kb, err := conn.Kubernetes(s)
		switch {
		case err == nil:
			if w, ok := kb.(waiter); ok {
				_, err := w.Wait(ctx)
				return err
			}
		case s.Cfg.Backend == plugin.BackendKubernetes || !errors.Is(err, errNotInCluster):
			return fmt.Errorf("backend kubernetes: %w", err)
		default:
			s.Log.Debugf("not in a Kubernetes pod (%v): waiting on SC's API alone", err)
		}
	}
	_, err := s.AwaitSidecar(ctx, nil)
	return err
}

// open returns the backend the settings choose. auto takes Docker when an
// engine answers, else Kubernetes when the plugin runs in a pod, else
// fails naming both.
func open(ctx context.Context, s *plugin.Session, conn Connectors) (plugin.Backend, func(), error) {
	c := s.Cfg
	none := func() {}
	if c.Backend == plugin.BackendKubernetes {
		b, err := conn.Kubernetes(s)
		if err != nil {
			return nil, nil, fmt.Errorf("backend kubernetes: %w", err)
		}
		return b, none, nil
	}
	b, closeFn, err := conn.Docker(ctx, s)
	switch {
	case err == nil:
		return b, closeFn, nil
	case c.Backend == plugin.BackendDocker || !errors.Is(err, engine.ErrUnreachable):
		return nil, nil, docker.EngineHint(err, c.Pipeline)
	}
	kb, kerr := conn.Kubernetes(s)
	switch {
	case errors.Is(kerr, errNotInCluster):
		return nil, nil, fmt.Errorf("%w; or run the step in a Kubernetes pod with a service account (backend kubernetes)", docker.EngineHint(err, c.Pipeline))
	case kerr != nil:
		return nil, nil, kerr
	}
	s.Log.Info("no Docker engine; running the tunnel as a Kubernetes pod")
	return kb, none, nil
}
