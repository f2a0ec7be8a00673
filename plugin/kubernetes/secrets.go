package kubernetes

import (
	"context"
	"fmt"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/kubeapi"
)

// learnSecrets adds the values in the tunnel's Secret to the masker before
// anything of SC's is printed: a stop or status step may know none of them.
// It returns the Secret (empty when there is none).
func (k *backend) learnSecrets(ctx context.Context, p kubeapi.Pod) (kubeapi.Secret, error) {
	s, err := k.kc.GetSecret(ctx, k.ns, credentialsOf(p.Metadata.Name))
	if kubeapi.IsNotFound(err) {
		return kubeapi.Secret{}, nil
	}
	if err != nil {
		return s, fmt.Errorf("read the tunnel's secret to mask its values: %w", forbidden(err))
	}
	for key, v := range s.Data {
		if key != secretUsername {
			k.mask(string(v))
		}
	}
	return s, nil
}

// scEnv is SC's environment as the kubelet gives it: the pod's values, and
// those it takes from the tunnel's Secret (held in memory, for the backstop).
func scEnv(p kubeapi.Pod, s kubeapi.Secret) []string {
	var env []string
	for _, c := range p.Spec.Containers {
		if c.Name != scContainer {
			continue
		}
		for _, e := range c.Env {
			switch {
			case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
				env = append(env, e.Name+"="+string(s.Data[e.ValueFrom.SecretKeyRef.Key]))
			case e.ValueFrom == nil:
				env = append(env, e.Name+"="+e.Value)
			}
		}
	}
	return env
}

// mask adds a secret value to the masker: the whole value, and its parts
// that are secret alone (an --option=value argument, a user:pass, a proxy
// URL's password).
func (k *backend) mask(val string) {
	k.s.Opt.Masker.Add(val)
	k.s.Opt.Masker.Add(plugin.SecretsOfArgs([]string{val})...)
	k.s.Opt.Masker.Add(plugin.SecretsOfOption("auth", val)...)
	k.s.Opt.Masker.Add(plugin.ProxyPassword(val)...)
}

// lastLines returns SC's last log lines: from the log API, or, where no
// kubelet serves it, from the termination message the kubelet wrote.
func (k *backend) lastLines(ctx context.Context, p kubeapi.Pod, container string) string {
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if logs, err := k.kc.PodLogs(lctx, k.ns, p.Metadata.Name, container, plugin.TailLines); err == nil && logs != "" {
		return logs
	}
	for _, cs := range p.Status.ContainerStatuses {
		if t := cs.State.Terminated; t != nil && t.Message != "" && cs.Name == container {
			return t.Message
		}
	}
	return ""
}
