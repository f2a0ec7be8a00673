package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/kubeapi"
)

// ungraceful says how SC ended without its graceful shutdown, "" when it
// had one: before is the pod as the stop found it, killed whether the
// kubelet's grace period (stop_timeout) ran out.
func ungraceful(before kubeapi.Pod, killed bool) string {
	for _, cs := range before.Status.ContainerStatuses {
		if t := cs.State.Terminated; cs.Name == scContainer && t != nil && t.ExitCode != 0 {
			return fmt.Sprintf("sauce connect had already ended with exit code %d", t.ExitCode)
		}
	}
	if killed {
		return "sauce connect was killed when stop_timeout ran out"
	}
	return ""
}

// remove deletes a tunnel pod and its secret and service.
func (k *backend) remove(ctx context.Context, name string, grace time.Duration) error {
	return errors.Join(
		forbidden(k.kc.DeletePod(ctx, k.ns, name, grace)),
		forbidden(k.kc.DeleteSecret(ctx, k.ns, credentialsOf(name))),
		forbidden(k.kc.DeleteService(ctx, k.ns, name)),
	)
}

// Stop deletes this tunnel's pod (stop_timeout is its grace period), its
// secret and service, after printing SC's last lines. Nothing to stop is a
// warning.
func (k *backend) Stop(ctx context.Context) error {
	pods, err := k.kc.ListPods(ctx, k.ns, kubeSelector(k.cfg.TunnelName))
	if err != nil {
		return fmt.Errorf("look for this tunnel's pod: %w", forbidden(err))
	}
	if len(pods) == 0 {
		k.log.Warnf("no tunnel named %s is running; nothing to stop", k.cfg.TunnelName)
		return nil
	}
	for _, p := range pods {
		secret, err := k.learnSecrets(ctx, p)
		if err != nil {
			return err
		}
		killed, err := k.shutdown(ctx, p)
		if err != nil {
			return err
		}
		if why := ungraceful(p, killed); why != "" {
			plugin.Backstop(context.WithoutCancel(ctx), k.log, scEnv(p, secret), k.cfg.RESTURL, k.cfg.TunnelName, p.Metadata.Annotations[annotationSauceID], why)
		}
	}
	return nil
}

// shutdown deletes one tunnel pod with stop_timeout as its grace period
// and follows SC's log until the container has ended, so that the stop
// step shows SC's drain (and waits for it), as `docker stop` does. It
// says whether the grace period ran out.
func (k *backend) shutdown(ctx context.Context, p kubeapi.Pod) (killed bool, err error) {
	began := k.s.Opt.Now()
	// Finish even if the plugin is being cancelled: a half-stopped tunnel helps nobody.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), k.cfg.StopTimeout+plugin.CleanupTimeout)
	defer cancel()
	// The kubelet kills SC at the end of the grace period; its log stream
	// ends soon after (it checks an ended container's log once a second).
	lctx, lcancel := context.WithTimeout(ctx, k.cfg.StopTimeout+logEndSlack)
	defer lcancel()
	logs, ferr := k.kc.FollowPodLogs(lctx, k.ns, p.Metadata.Name, scContainer, plugin.TailLines)
	if logs != nil {
		defer logs.Close()
	}
	exit := k.scExit(lctx, p)
	fmt.Fprintf(k.s.Opt.Out, "+ kubectl delete pod %s -n %s --grace-period %d\n", p.Metadata.Name, k.ns, int(k.cfg.StopTimeout.Seconds()))
	if err := k.remove(ctx, p.Metadata.Name, k.cfg.StopTimeout); err != nil {
		return false, err
	}
	if ferr != nil {
		// No log stream (a pod never started, a kubelet that serves no
		// logs): what the kubelet kept is all there is.
		k.log.Debugf("follow sauce connect's log: %v", ferr)
		k.s.PrintLog(k.lastLines(ctx, p, scContainer))
	} else {
		b, err := io.ReadAll(io.LimitReader(logs, 1<<20))
		if err != nil {
			k.log.Debugf("sauce connect's log stream did not end: %v", err)
		}
		k.s.PrintLog(string(b))
	}
	took := k.s.Opt.Now().Sub(began)
	// SIGKILL at the end of the grace period is exit 137; where the
	// kubelet's report of SC's end is not seen, the time it took tells.
	code := <-exit
	killed = code == 137 || code < 0 && took >= k.cfg.StopTimeout
	if killed {
		k.log.Warnf("sauce connect did not finish draining within stop_timeout (%s) and was killed by the kubelet; raise stop_timeout to give it longer", k.cfg.StopTimeout)
	}
	k.log.Infof("tunnel %s stopped (pod %s deleted) in %s", k.cfg.TunnelName, p.Metadata.Name, took.Round(time.Millisecond))
	return killed, nil
}

// scExit follows a tunnel pod being deleted until it is gone (or ctx
// ends), and yields SC's exit code as the kubelet last reported it, -1
// when it reported none.
func (k *backend) scExit(ctx context.Context, p kubeapi.Pod) <-chan int {
	out := make(chan int, 1)
	go func() {
		code := -1
		_, _ = k.watchPod(ctx, p, func(p kubeapi.Pod) (bool, error) {
			for _, cs := range p.Status.ContainerStatuses {
				if t := cs.State.Terminated; cs.Name == scContainer && t != nil {
					code = t.ExitCode
				}
			}
			return false, nil
		})
		out <- code
	}()
	return out
}

// logEndSlack is how long after stop_timeout the stop still reads SC's log.
const logEndSlack = 10 * time.Second

// foreground keeps the tunnel for as long as the plugin runs (run mode).
func (k *backend) foreground(ctx context.Context, t *plugin.Tunnel) error {
	pod, err := k.kc.GetPod(ctx, k.ns, t.ID)
	if err != nil {
		return err
	}
	_, err = k.watchPod(ctx, pod, func(p kubeapi.Pod) (bool, error) {
		for _, cs := range p.Status.ContainerStatuses {
			if cs.State.Terminated != nil {
				return true, fmt.Errorf("sauce connect exited with code %d while the tunnel was up", cs.State.Terminated.ExitCode)
			}
		}
		return false, nil
	})
	if ctx.Err() != nil {
		k.log.Infof("%v: stopping tunnel %s", context.Cause(ctx), t.Name)
		return k.remove(context.WithoutCancel(ctx), t.ID, k.cfg.StopTimeout)
	}
	_ = k.remove(context.WithoutCancel(ctx), t.ID, plugin.FailureGrace)
	return err
}
