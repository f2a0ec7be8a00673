package kubernetes

import (
	"context"
	"fmt"
	"strings"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/kubeapi"
)

// Wait is action wait in a build pod: SC runs as a container of the build
// pod itself (a Harness Background step, a Drone service), where it shares
// the pod's localhost with the app under test. The plugin waits for SC's
// API and follows SC's container, so that an SC that exits (rejected
// credentials, a bad option) fails the step at once, with its masked log.
func (k *backend) Wait(ctx context.Context) (*plugin.Tunnel, error) {
	return k.s.AwaitSidecar(ctx, k.watchSidecar)
}

// watchSidecar follows SC's container in the build pod until it has failed
// (then it prints SC's last lines and returns why) or ctx ends (nil). SC's
// container is the build pod's container of the image setting's
// repository; without one the wait relies on SC's API alone.
func (k *backend) watchSidecar(ctx context.Context) error {
	pod, err := k.buildPod(ctx)
	if err != nil {
		k.log.Debugf("cannot read the build pod (%v): an exit of sauce connect shows only as ready_timeout", err)
		return nil
	}
	c, ok := sidecar(pod, k.cfg.Image)
	if !ok {
		k.log.Debugf("no container of image %s in build pod %s (set image to the one your Sauce Connect step runs): an exit of sauce connect shows only as ready_timeout", repository(k.cfg.Image), pod.Metadata.Name)
		return nil
	}
	k.log.Debugf("following sauce connect in container %s of build pod %s", c.Name, pod.Metadata.Name)
	masked := k.learnEnvSecrets(ctx, c)
	p, err := k.watchPod(ctx, pod, func(p kubeapi.Pod) (bool, error) {
		for _, cs := range p.Status.ContainerStatuses {
			if cs.Name == c.Name {
				return false, containerFailed(cs)
			}
		}
		return false, nil
	})
	if ctx.Err() != nil {
		return nil
	}
	tail := ""
	if masked {
		tail = k.lastLines(ctx, p, c.Name)
		k.s.PrintLog(tail)
	} else {
		k.log.Warn("sauce connect's log is not shown: a secret of its container could not be read to mask it")
	}
	if classified := plugin.ClassifyExit(err, tail); classified != err {
		return classified
	}
	return fmt.Errorf("sauce connect in container %s of the build pod: %w", c.Name, err)
}

// sidecar finds SC's container in the build pod: the first of the image
// setting's repository (tag and registry defaults aside).
func sidecar(p kubeapi.Pod, image string) (kubeapi.Container, bool) {
	want := repository(image)
	for _, c := range p.Spec.Containers {
		if repository(c.Image) == want {
			return c, true
		}
	}
	return kubeapi.Container{}, false
}

// repository is an image reference without tag or digest, with Docker
// Hub's defaults filled in: sauce-connect:5 and docker.io/library/sauce-connect
// are one repository.
func repository(ref string) string {
	ref, _, _ = strings.Cut(ref, "@")
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	first, _, found := strings.Cut(ref, "/")
	switch {
	case !found:
		ref = "docker.io/library/" + ref
	case !strings.ContainsAny(first, ".:") && first != "localhost":
		ref = "docker.io/" + ref
	}
	return ref
}

// learnEnvSecrets adds the secret values of SC's container to the masker
// before anything of SC's is printed: those given by value (SAUCE_ACCESS_KEY
// and the like), and every value taken from a Secret except the username.
// It reports whether every one could be read.
func (k *backend) learnEnvSecrets(ctx context.Context, c kubeapi.Container) bool {
	var env []string
	ok := true
	// Each Secret read once: a pipeline's one Secret usually backs several variables.
	type read struct {
		s   kubeapi.Secret
		err error
	}
	secrets := map[string]read{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env = append(env, e.Name+"="+e.Value)
		case e.ValueFrom.SecretKeyRef != nil && e.Name != "SAUCE_USERNAME":
			ref := e.ValueFrom.SecretKeyRef
			r, done := secrets[ref.Name]
			if !done {
				r.s, r.err = k.kc.GetSecret(ctx, k.ns, ref.Name)
				secrets[ref.Name] = r
			}
			if r.err != nil {
				k.log.Debugf("read secret %s for %s: %v", ref.Name, e.Name, r.err)
				ok = false
				continue
			}
			v := string(r.s.Data[ref.Key])
			k.mask(v)
			env = append(env, e.Name+"="+v)
		}
	}
	k.s.Opt.Masker.Add(plugin.SecretsOfEnv(env)...)
	k.s.Opt.Masker.Add(plugin.SecretsOfArgs(c.Args)...)
	return ok
}
