package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/backoff"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/kubeapi"
)

// Start opens the tunnel, or reuses a ready one of its name, within the
// ready_timeout ctx carries: the Secret, the Pod (and the Service) owned by
// the build pod, then a wait until the pod is Ready and Sauce Labs lists
// the tunnel.
func (k *backend) Start(ctx context.Context) (*plugin.Tunnel, error) {
	began := k.s.Opt.Now()
	owner, err := k.buildPod(ctx)
	if err != nil {
		return nil, fmt.Errorf("find the build pod %s in namespace %s (set kubernetes_pod): %w", k.pod, k.ns, forbidden(err))
	}
	owner.Metadata.Namespace = k.ns
	if t, err := k.reuse(ctx); err != nil || t != nil {
		return t, err
	}
	objs := objects(k.cfg, owner, began)
	// What this start created is removed on failure by its UID alone: a
	// concurrent start of the tunnel may have objects of the same names.
	var cl plugin.Rollback
	t, err := k.create(ctx, &cl, objs, owner)
	if err != nil {
		if cerr := cl.Do(ctx); cerr != nil {
			k.log.WithError(cerr).Warn("could not remove what was created")
		}
		return nil, err
	}
	cl.Forget()
	if t.Reused {
		return t, nil
	}
	t.ReadyIn = k.s.Opt.Now().Sub(began)
	k.s.Report(t)
	return t, nil
}

// Run keeps the tunnel up for as long as the plugin runs.
func (k *backend) Run(ctx context.Context) error {
	rctx, cancel := plugin.ReadyBy(ctx, k.cfg)
	t, err := k.Start(rctx)
	err = plugin.TimedOut(rctx, k.cfg, err)
	cancel()
	if err != nil {
		return err
	}
	return k.foreground(ctx, t)
}

// create makes the tunnel's Secret, Service and pod (registering each in
// cl) and waits until it is ready and confirmed; a concurrent start that
// made the Secret first is joined instead.
func (k *backend) create(ctx context.Context, cl *plugin.Rollback, objs objectSet, owner kubeapi.Pod) (*plugin.Tunnel, error) {
	fmt.Fprintf(k.s.Opt.Out, "+ kubectl create secret generic %s -n %s (username, access-key=***)\n", objs.Secret.Metadata.Name, k.ns)
	secret, err := k.kc.CreateSecret(ctx, k.ns, objs.Secret)
	if kubeapi.IsConflict(err) {
		k.log.Infof("another start is bringing tunnel %s up; waiting for it", k.cfg.TunnelName)
		return k.awaitOther(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("create the credentials secret: %w", forbidden(err))
	}
	cl.Add(func(ctx context.Context) error {
		return k.kc.DeleteOwn(ctx, kubeapi.SecretPath(k.ns, secret.Metadata.Name), secret.Metadata.UID, nil)
	})
	var svc kubeapi.Service
	if objs.Service != nil {
		if svc, err = k.kc.CreateService(ctx, k.ns, *objs.Service); err != nil {
			return nil, fmt.Errorf("create the sauce connect service: %w", forbidden(err))
		}
		cl.Add(func(ctx context.Context) error {
			return k.kc.DeleteOwn(ctx, kubeapi.ServicePath(k.ns, svc.Metadata.Name), svc.Metadata.UID, nil)
		})
	}
	defer k.s.WarnNameInUse(ctx)()
	t, err := k.attempts(ctx, cl, objs.Pod, owner)
	if err != nil {
		return nil, err
	}
	if objs.Service != nil {
		k.awaitRoute(ctx, svc)
	}
	return t, nil
}

// attempts creates SC's pod and waits until it is ready and confirmed,
// starting it afresh (plugin.Attempts) when SC exits early for a reason a
// retry can fix, as the Docker backend does.
func (k *backend) attempts(ctx context.Context, cl *plugin.Rollback, spec, owner kubeapi.Pod) (*plugin.Tunnel, error) {
	var t *plugin.Tunnel
	var created kubeapi.Pod
	err := plugin.Attempts(ctx, k.s, func(ctx context.Context) error {
		if created.Metadata.Name != "" {
			if err := k.deletePodAndWait(ctx, created.Metadata.Name); err != nil {
				return backoff.Permanent(err)
			}
		}
		var err error
		if created, err = k.createPod(ctx, spec, owner); err != nil {
			return backoff.Permanent(err)
		}
		pod := created
		cl.Add(func(ctx context.Context) error {
			grace := plugin.FailureGrace
			return k.kc.DeleteOwn(ctx, kubeapi.PodPath(k.ns, pod.Metadata.Name), pod.Metadata.UID, &grace)
		})
		t, err = k.ready(ctx, created)
		return err
	})
	return t, err
}

// ready waits until pod is Ready, then has Sauce Labs confirm its tunnel
// and records the tunnel's ID on the pod.
func (k *backend) ready(ctx context.Context, pod kubeapi.Pod) (*plugin.Tunnel, error) {
	p, err := k.waitReady(ctx, pod)
	if err != nil {
		return nil, err
	}
	t := k.tunnelIn(p)
	if err := k.s.Confirm(ctx, t); err != nil {
		k.s.PrintLog(k.lastLines(ctx, p, scContainer))
		return nil, err
	}
	k.recordSauceID(ctx, *t)
	return t, nil
}

// createPod creates SC's pod, explaining the refusals of admission.
func (k *backend) createPod(ctx context.Context, spec, owner kubeapi.Pod) (kubeapi.Pod, error) {
	fmt.Fprintf(k.s.Opt.Out, "+ kubectl run %s -n %s --image %s (owned by pod %s) -- %s\n", spec.Metadata.Name, k.ns, k.cfg.Image, owner.Metadata.Name, strings.Join(spec.Spec.Containers[0].Args, " "))
	pod, err := k.kc.CreatePod(ctx, k.ns, spec)
	switch {
	case err == nil:
		return pod, nil
	case kubeapi.IsForbidden(err) && strings.Contains(err.Error(), "violates PodSecurity"):
		// Admission, not RBAC: the namespace enforces a Pod Security level.
		hint := "set kubernetes_run_as_user to a non-root uid the image can run as, which makes the pod fit the restricted level"
		if k.cfg.Kubernetes.RunAsUser != nil {
			hint = "the namespace's policy asks for more than the restricted level; run the tunnel in another namespace (kubernetes_namespace)"
		}
		return pod, fmt.Errorf("create the sauce connect pod: namespace %s refuses it: %w; %s", k.ns, err, hint)
	case k.cfg.Kubernetes.ServiceAccount != "" && kubeapi.IsForbidden(err):
		// Admission refuses a pod whose service account is missing with
		// the same 403 as RBAC: name both causes.
		return pod, fmt.Errorf("create the sauce connect pod: %w; check that kubernetes_service_account %s exists in namespace %s, and %s", err, k.cfg.Kubernetes.ServiceAccount, k.ns, rbacHint)
	}
	return pod, fmt.Errorf("create the sauce connect pod: %w", forbidden(err))
}

// deletePodAndWait deletes a failed attempt's pod and waits, within ctx,
// until it is gone, so that the next attempt can take its name.
func (k *backend) deletePodAndWait(ctx context.Context, name string) error {
	if err := k.kc.DeletePod(ctx, k.ns, name, plugin.FailureGrace); err != nil && !kubeapi.IsNotFound(err) {
		return fmt.Errorf("delete the failed sauce connect pod: %w", forbidden(err))
	}
	err := backoff.Retry(ctx, backoff.Policy{First: 100 * time.Millisecond, Factor: 1}, func(ctx context.Context) error {
		if _, err := k.kc.GetPod(ctx, k.ns, name); !kubeapi.IsNotFound(err) {
			return errors.New("still there")
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("the failed sauce connect pod %s was not gone before ready_timeout, so it could not be started again: %w", name, err)
	}
	return nil
}

// recordSauceID annotates the tunnel pod with its Sauce Labs ID; without it
// the backstop deletes nothing.
func (k *backend) recordSauceID(ctx context.Context, t plugin.Tunnel) {
	if t.SauceID == "" {
		return
	}
	if err := k.kc.AnnotatePod(ctx, k.ns, t.ID, map[string]string{annotationSauceID: t.SauceID}); err != nil {
		k.log.Warnf("could not record the tunnel's Sauce Labs ID on pod %s (%v; the Role needs patch on pods); if SC does not close the tunnel itself, nothing deletes it at Sauce Labs", t.ID, forbidden(err))
	}
}

// reuse finds a pod of this tunnel from an earlier or a concurrent start: a
// Ready one is reused; one still within the ready_timeout of the start that
// created it (its ready-by label) is waited for, until deadline, so that
// two starts of one tunnel at once share the tunnel that won; anything
// else is deleted.
func (k *backend) reuse(ctx context.Context) (*plugin.Tunnel, error) {
	pods, err := k.kc.ListPods(ctx, k.ns, kubeSelector(k.cfg.TunnelName))
	if err != nil {
		return nil, fmt.Errorf("look for this tunnel's pod: %w", forbidden(err))
	}
	for _, p := range pods {
		if p.Metadata.DeletionTimestamp != nil {
			continue
		}
		if ready, _ := podState(p); ready {
			return k.reused(p), nil
		}
		readyBy, _ := strconv.ParseInt(p.Metadata.Labels[plugin.LabelReadyBy], 10, 64)
		if until := time.Unix(readyBy, 0); k.s.Opt.Now().Before(until) {
			k.log.Infof("another start is bringing tunnel %s up in pod %s; waiting for it", k.cfg.TunnelName, p.Metadata.Name)
			wctx, cancel := context.WithDeadlineCause(ctx, until, plugin.ErrReadyTimeout)
			ready, err := k.waitReady(wctx, p)
			cancel()
			if err == nil {
				return k.reused(ready), nil
			}
		}
		k.log.Infof("replacing pod %s of tunnel %s (phase %s)", p.Metadata.Name, k.cfg.TunnelName, p.Status.Phase)
		if err := k.remove(ctx, p.Metadata.Name, plugin.FailureGrace); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// tunnelIn is the tunnel in pod p.
func (k *backend) tunnelIn(p kubeapi.Pod) *plugin.Tunnel {
	return &plugin.Tunnel{ID: p.Metadata.Name, Kind: "pod", Ref: p.Metadata.Name, Name: k.cfg.TunnelName, Endpoints: k.endpoints(p)}
}

// reused hands over a ready tunnel pod another start made.
func (k *backend) reused(p kubeapi.Pod) *plugin.Tunnel {
	k.log.Infof("tunnel %s is already running and ready in pod %s; reusing it", k.cfg.TunnelName, p.Metadata.Name)
	t := k.tunnelIn(p)
	t.Reused, t.SauceID = true, p.Metadata.Annotations[annotationSauceID]
	k.s.Report(t)
	return t
}

// awaitOther waits, within ctx, for the tunnel a concurrent start is
// bringing up (it made the secret first): its pod, then its readiness.
func (k *backend) awaitOther(ctx context.Context) (*plugin.Tunnel, error) {
	var pod kubeapi.Pod
	err := backoff.Retry(ctx, backoff.Policy{First: 100 * time.Millisecond, Factor: 1}, func(ctx context.Context) error {
		pods, err := k.kc.ListPods(ctx, k.ns, kubeSelector(k.cfg.TunnelName))
		if err != nil {
			return backoff.Permanent(fmt.Errorf("look for this tunnel's pod: %w", forbidden(err)))
		}
		for _, p := range pods {
			if p.Metadata.DeletionTimestamp == nil {
				pod = p
				return nil
			}
		}
		return errors.New("no pod")
	})
	if err != nil {
		if errors.Is(err, plugin.ErrReadyTimeout) {
			return nil, &plugin.TimeoutError{Awaited: "the pod of the concurrent start of tunnel " + k.cfg.TunnelName + " (its secret exists; remove it if no start is running)", After: k.cfg.ReadyTimeout, Last: "no pod"}
		}
		return nil, err
	}
	ready, err := k.waitReady(ctx, pod)
	if err != nil {
		return nil, fmt.Errorf("the tunnel another start was bringing up did not become ready: %w", err)
	}
	return k.reused(ready), nil
}
