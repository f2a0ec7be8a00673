package plugin

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/kube"
)

// Backends connect to what can run the tunnel; main passes the real ones.
type Backends struct {
	// Docker connects to the engine named by DOCKER_HOST (engine.NewEnv).
	Docker func(ctx context.Context) (*engine.Engine, error)
	// Kubernetes connects with the pod's service account (kube.InCluster)
	// and returns its namespace.
	Kubernetes func() (*kube.Client, string, error)
}

// Run picks the backend (setting backend) and performs the action there.
// auto takes Docker when an engine answers, else Kubernetes when the plugin
// runs in a pod, else fails naming both.
func Run(ctx context.Context, c Config, b Backends, o Options) error {
	if c.Action == ActionNone {
		o.Log.Info("post step: nothing to clean up (this step's action starts no tunnel)")
		return nil
	}
	if c.Backend != BackendKubernetes {
		eng, err := b.Docker(ctx)
		switch {
		case err == nil:
			defer eng.Close()
			o.DockerHost = eng.Host
			o.Log.Debugf("docker engine %s, API %s", eng.Host, eng.APIVersion)
			return Exec(ctx, c, eng, o)
		case c.Backend == BackendDocker || !errors.Is(err, engine.ErrUnreachable):
			return EngineHint(err, c.Pipeline)
		}
		kc, ns, kerr := b.Kubernetes()
		if errors.Is(kerr, kube.ErrNotInCluster) {
			return fmt.Errorf("%w; or run the step in a Kubernetes pod with a service account (backend kubernetes)", EngineHint(err, c.Pipeline))
		}
		if kerr != nil {
			return kerr
		}
		o.Log.Info("no Docker engine; running the tunnel as a Kubernetes pod")
		return ExecKubernetes(ctx, c, kc, ns, o)
	}
	kc, ns, err := b.Kubernetes()
	if err != nil {
		return fmt.Errorf("backend kubernetes: %w", err)
	}
	return ExecKubernetes(ctx, c, kc, ns, o)
}

// ExecKubernetes performs the action with the Kubernetes backend. ns is the
// service account's namespace, used unless kubernetes_namespace is set.
func ExecKubernetes(ctx context.Context, c Config, kc *kube.Client, ns string, o Options) error {
	if c.ConfigFile != "" && (c.Action == ActionStart || c.Action == ActionRun) {
		// The file is in the build pod's workspace, which the tunnel pod cannot see.
		return &SettingsError{Problems: []string{"invalid setting config_file (PLUGIN_CONFIG_FILE): not available with the Kubernetes backend, whose tunnel pod cannot see the workspace; pass the options as settings or sc_args"}}
	}
	if _, _, ok := apiBasicAuth(envList(c.Env), c.SCArgs); ok {
		// The kubelet's readiness probe cannot send credentials from a Secret.
		return &SettingsError{Problems: []string{"invalid setting env (PLUGIN_ENV): SAUCE_API_BASIC_AUTH (or --api-basic-auth) is not available with the Kubernetes backend, whose readiness probe cannot authenticate; leave the API without basic auth (the tunnel pod's API is reachable only in the cluster)"}}
	}
	if c.Kubernetes.Namespace != "" {
		ns = c.Kubernetes.Namespace
	}
	if c.Kubernetes.Pod == "" {
		c.Kubernetes.Pod, _ = os.Hostname()
	}
	r := newRun(c, nil, o)
	return (&kubeRun{run: r, kc: kc, ns: ns}).exec(ctx)
}
