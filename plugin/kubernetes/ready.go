package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/backoff"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/kubeapi"
)

// podState reads a pod's state: ready, or a failure that will not heal
// (SC exited, the image cannot be pulled, the pod cannot be scheduled).
func podState(p kubeapi.Pod) (ready bool, err error) {
	if c, ok := p.Condition("Ready"); ok && c.Status == "True" {
		return true, nil
	}
	if c, ok := p.Condition("PodScheduled"); ok && c.Status == "False" && c.Reason == "Unschedulable" {
		return false, fmt.Errorf("the sauce connect pod cannot be scheduled: %s; check cpu_request and memory_request, kubernetes_node_selector and kubernetes_tolerations", strings.TrimSuffix(strings.TrimSpace(c.Message), "."))
	}
	for _, cs := range p.Status.ContainerStatuses {
		if err := containerFailed(cs); err != nil {
			return false, err
		}
	}
	if p.Status.Phase == "Failed" {
		return false, fmt.Errorf("the sauce connect pod failed: %s %s", p.Status.Reason, p.Status.Message)
	}
	return false, nil
}

// containerFailed says why SC's container will not become ready: it
// exited, or its image or configuration is wrong.
func containerFailed(cs kubeapi.ContainerStatus) error {
	if t := cs.State.Terminated; t != nil {
		return &plugin.ExitedError{ExitCode: t.ExitCode, OOMKilled: t.Reason == "OOMKilled"}
	}
	if w := cs.State.Waiting; w != nil {
		switch w.Reason {
		case "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull":
			return fmt.Errorf("cannot pull image %s (%s): %s; check image, pull and image_pull_secret", cs.Image, w.Reason, w.Message)
		case "CreateContainerConfigError", "CreateContainerError":
			return fmt.Errorf("cannot create the sauce connect container (%s): %s", w.Reason, w.Message)
		}
	}
	return nil
}

// watchPod follows a pod with a watch (re-opened when the server ends it)
// until until says done, the pod is deleted, or ctx ends.
func (k *backend) watchPod(ctx context.Context, p kubeapi.Pod, until func(kubeapi.Pod) (bool, error)) (kubeapi.Pod, error) {
	if done, err := until(p); done || err != nil {
		return p, err
	}
	// A stream that ended with nothing in it is not reopened at once: a
	// server that closes every watch would have the plugin spin.
	err := backoff.Retry(ctx, backoff.Policy{First: watchBackoff, Max: watchBackoffMax}, func(ctx context.Context) error {
		got, done, err := k.watchOnce(ctx, &p, until)
		switch {
		case done || err != nil:
			return backoff.Permanent(err)
		case got:
			return backoff.After(errWatchEnded, 0)
		}
		return errWatchEnded
	})
	if errors.Is(err, errWatchEnded) {
		err = context.Cause(ctx)
	}
	return p, err
}

// errWatchEnded is a watch the server ended before the pod was done.
var errWatchEnded = errors.New("the watch ended")

// watchOnce follows one watch stream of the pod (p, kept up to date) and
// says whether it carried any event and whether until is done.
func (k *backend) watchOnce(ctx context.Context, p *kubeapi.Pod, until func(kubeapi.Pod) (bool, error)) (got, done bool, err error) {
	// The stream ends with this call, whatever ends it: until's verdict too.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events, err := k.kc.WatchPod(ctx, k.ns, p.Metadata.Name, p.Metadata.ResourceVersion)
	if err != nil {
		return false, true, fmt.Errorf("watch the sauce connect pod: %w", forbidden(err))
	}
	for ev := range events {
		got = true
		switch ev.Type {
		case "DELETED":
			return got, true, errors.New("the sauce connect pod was deleted")
		case "ERROR":
			// The resource version expired: read the pod afresh.
			fresh, err := k.kc.GetPod(ctx, k.ns, p.Metadata.Name)
			if err != nil {
				return got, true, err
			}
			ev.Pod = fresh
		}
		*p = ev.Pod
		if done, err := until(*p); done || err != nil {
			return got, true, err
		}
	}
	if ctx.Err() != nil {
		return got, true, context.Cause(ctx)
	}
	return got, false, nil
}

// The pause before a watch that ended empty is reopened.
const (
	watchBackoff    = 100 * time.Millisecond
	watchBackoffMax = 5 * time.Second
)

// waitReady waits, within the ready_timeout ctx carries, until the pod is
// Ready, and returns it as it was then; on a failure it prints SC's last
// log lines, masked.
func (k *backend) waitReady(ctx context.Context, pod kubeapi.Pod) (kubeapi.Pod, error) {
	w := &podWatch{k: k, pod: pod}
	w.seen.Store(pod)
	var target plugin.ReadyTarget = w
	if !k.cfg.Kubernetes.Service {
		target = probedPod{w}
	}
	err := plugin.WaitReady(ctx, target, "pod "+pod.Metadata.Name+" to become Ready (its readiness probe is GET /readyz)")
	p := w.seen.Load().(kubeapi.Pod)
	if err == nil {
		return p, nil
	}
	tail := k.lastLines(ctx, p, scContainer)
	k.s.PrintLog(tail)
	if classified := k.s.ExplainExit(ctx, err, tail); classified != err {
		return p, classified
	}
	var to *plugin.TimeoutError
	if errors.As(err, &to) {
		return p, err
	}
	return p, fmt.Errorf("wait for tunnel %s: %w", k.cfg.TunnelName, err)
}

// podWatch is a tunnel pod awaited (plugin.WaitReady): its status, as the
// API server's watch tells it, and the pod as last seen.
type podWatch struct {
	k    *backend
	pod  kubeapi.Pod
	seen atomic.Value // kubeapi.Pod
}

// Watch turns the pod's status into signs: Ready, a failure that will not
// heal, or what it shows meanwhile.
func (w *podWatch) Watch(ctx context.Context) <-chan plugin.Sign {
	out := make(chan plugin.Sign)
	go func() {
		defer close(out)
		_, err := w.k.watchPod(ctx, w.pod, func(p kubeapi.Pod) (bool, error) {
			w.seen.Store(p)
			ready, err := podState(p)
			s := plugin.Sign{Ready: ready, Gone: err, Note: podNote(p)}
			select {
			case out <- s:
			case <-ctx.Done():
				return true, nil
			}
			return ready || err != nil, nil
		})
		if err != nil && ctx.Err() == nil {
			select {
			case out <- plugin.Sign{Gone: err}:
			case <-ctx.Done():
			}
		}
	}()
	return out
}

// podNote says where a pod stands, for the timeout's message.
func podNote(p kubeapi.Pod) string {
	note := "phase " + p.Status.Phase
	if c, ok := p.Condition("Ready"); ok {
		note += ", Ready " + c.Status + " " + c.Reason
	}
	return note
}

// probedPod is a pod whose /readyz the plugin asks itself, at its pod IP:
// the kubelet probes at most once a second and then the Ready condition
// still has to reach the plugin, while a step in a pod can usually reach
// another pod's IP. Where it cannot (a NetworkPolicy, a plugin outside the
// cluster network), the probes fail quietly and the Ready condition
// decides. With kubernetes_service the later steps go through the
// Service, which routes only to pods the kubelet has marked Ready: there
// the condition alone decides (a podWatch).
type probedPod struct{ *podWatch }

// Probe asks /readyz at the pod's IP, once it has one.
func (p probedPod) Probe(ctx context.Context) (int, error) {
	pod := p.seen.Load().(kubeapi.Pod)
	if pod.Status.PodIP == "" {
		return 0, errors.New("the pod has no IP yet")
	}
	return p.k.s.Readyz(ctx, p.k.endpoints(pod).Probe)
}
