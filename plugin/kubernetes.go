package plugin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/kube"
)

// scContainer is the name of the SC container in the tunnel pod.
const scContainer = "sauce-connect"

// Keys of the credentials Secret.
const (
	secretUsername  = "username"
	secretAccessKey = "access-key"
)

// rbacHint tells what to do about a forbidden call.
const rbacHint = "grant the build pod's service account the Role in the README (Kubernetes) or testdata/kubernetes/role.yaml"

// KubeObjects are what the Kubernetes backend creates for one tunnel.
type KubeObjects struct {
	Secret  kube.Secret
	Pod     kube.Pod
	Service *kube.Service
}

// kubeSelector selects the tunnel pods of one tunnel.
func kubeSelector(tunnel string) string {
	return LabelManaged + "=true," + LabelTunnel + "=" + labelValue(tunnel) + "," + LabelRole + "=" + RoleTunnel
}

// KubernetesObjects turns the settings into the tunnel's Secret, Pod and
// (optionally) Service, all owned by the build pod so that the garbage
// collector removes them when it goes. The credentials are only in the
// Secret; the Pod takes them by reference. It is pure and golden-tested.
func KubernetesObjects(c Config, owner kube.Pod, now time.Time) KubeObjects {
	name := kubeName(c.ContainerName)
	secretName := name + "-credentials"
	// No blockOwnerDeletion: where owner references are enforced it would
	// need update on pods/finalizers, and only foreground deletion uses it.
	owners := []kube.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: owner.Metadata.Name, UID: owner.Metadata.UID}}
	// No runner labels to read here: max_lifetime, else the default.
	labels := Labels(c, now, Deadline(c, nil, now), nil)
	labels[LabelRole] = RoleTunnel
	for k, v := range labels {
		labels[k] = labelValue(v)
	}
	meta := func(n string) kube.ObjectMeta {
		return kube.ObjectMeta{Name: n, Namespace: owner.Metadata.Namespace, Labels: labels, OwnerReferences: owners}
	}

	// The same variables and arguments as the Docker backend; the
	// credentials and every other secret value by reference to the Secret
	// (a secret argument as $(VAR), which the kubelet expands).
	spec := ContainerSpec(c, Placement{}, now)
	secretData := map[string]string{secretUsername: c.Username, secretAccessKey: c.AccessKey.Value()}
	fromSecret := func(name, key string) kube.EnvVar {
		return kube.EnvVar{Name: name, ValueFrom: &kube.EnvVarSource{SecretKeyRef: &kube.SecretKeySelector{Name: secretName, Key: key}}}
	}
	var env []kube.EnvVar
	for _, e := range spec.Env {
		switch {
		case e.Name == "SAUCE_USERNAME":
			env = append(env, fromSecret(e.Name, secretUsername))
		case e.Name == "SAUCE_ACCESS_KEY":
			env = append(env, fromSecret(e.Name, secretAccessKey))
		case e.Secret || len(secretsOfEnv([]string{e.Name + "=" + e.Value})) > 0:
			secretData[e.Name] = e.Value
			env = append(env, fromSecret(e.Name, e.Name))
		default:
			env = append(env, kube.EnvVar{Name: e.Name, Value: e.Value})
		}
	}
	args := append([]string(nil), spec.Cmd...)
	for _, a := range secretArgs(args) {
		v := fmt.Sprintf("DSC_SECRET_ARG_%d", a.index)
		secretData[v] = args[a.index]
		env = append(env, fromSecret(v, v))
		args[a.index] = "$(" + v + ")"
	}
	grace := int64(c.StopTimeout.Seconds())
	no := false
	pod := kube.Pod{
		APIVersion: "v1", Kind: "Pod", Metadata: meta(name),
		Spec: kube.PodSpec{
			RestartPolicy:                 "Never",
			TerminationGracePeriodSeconds: &grace,
			AutomountServiceAccountToken:  &no,
			EnableServiceLinks:            &no,
			Containers: []kube.Container{{
				Name: scContainer, Image: c.Image, Args: args, Env: env,
				Ports:           []kube.ContainerPort{{Name: "api", ContainerPort: c.APIPort, Protocol: "TCP"}},
				ReadinessProbe:  &kube.Probe{HTTPGet: &kube.HTTPGetAction{Path: "/readyz", Port: c.APIPort}, PeriodSeconds: 1, TimeoutSeconds: 1, FailureThreshold: 1},
				Resources:       kube.ResourceRequirements{Requests: c.Kubernetes.Requests, Limits: c.Kubernetes.Limits},
				ImagePullPolicy: map[Pull]string{PullIfNotExists: "IfNotPresent", PullAlways: "Always", PullNever: "Never"}[c.Pull],
				// On failure the kubelet puts SC's last log lines in the status.
				TerminationMessagePolicy: "FallbackToLogsOnError",
			}},
		},
	}
	if c.Kubernetes.ImagePullSecret != "" {
		pod.Spec.ImagePullSecrets = []kube.LocalObjectReference{{Name: c.Kubernetes.ImagePullSecret}}
	}
	objs := KubeObjects{
		Secret: kube.Secret{APIVersion: "v1", Kind: "Secret", Metadata: meta(secretName), Type: "Opaque",
			StringData: secretData},
		Pod: pod,
	}
	if c.Kubernetes.Service {
		objs.Service = &kube.Service{APIVersion: "v1", Kind: "Service", Metadata: meta(name), Spec: kube.ServiceSpec{
			Selector: map[string]string{LabelTunnel: labels[LabelTunnel], LabelRole: RoleTunnel},
			Ports:    []kube.ServicePort{{Name: "api", Port: c.APIPort, TargetPort: c.APIPort}},
		}}
	}
	return objs
}

// kubeRun is one execution against the Kubernetes API.
type kubeRun struct {
	*run
	kc *kube.Client
	ns string
}

// forbidden explains an RBAC refusal.
func forbidden(err error) error {
	if kube.IsForbidden(err) {
		return fmt.Errorf("%w; %s", err, rbacHint)
	}
	return err
}

func (k *kubeRun) exec(ctx context.Context) error {
	switch k.cfg.Action {
	case ActionStart:
		_, err := k.start(ctx)
		return err
	case ActionRun:
		t, err := k.start(ctx)
		if err != nil {
			return err
		}
		return k.foreground(ctx, t)
	case ActionStop:
		return k.stop(ctx)
	case ActionStatus:
		return k.status(ctx)
	default:
		return fmt.Errorf("action %s is not available on Kubernetes", k.cfg.Action)
	}
}

// start creates the Secret, the Pod (and the Service) owned by the build
// pod and waits, with a watch, until the pod is Ready.
func (k *kubeRun) start(ctx context.Context) (*tunnel, error) {
	began := k.opt.Now()
	owner, err := k.kc.GetPod(ctx, k.ns, k.cfg.Kubernetes.Pod)
	if err != nil {
		return nil, fmt.Errorf("find the build pod %s in namespace %s (set kubernetes_pod): %w", k.cfg.Kubernetes.Pod, k.ns, forbidden(err))
	}
	owner.Metadata.Namespace = k.ns
	if t, err := k.reuse(ctx); err != nil || t != nil {
		return t, err
	}
	objs := KubernetesObjects(k.cfg, owner, began)
	fmt.Fprintf(k.opt.Out, "+ kubectl create secret generic %s -n %s (username, access-key=***)\n", objs.Secret.Metadata.Name, k.ns)
	var cl cleanup
	if err := k.kc.CreateSecret(ctx, k.ns, objs.Secret); err != nil {
		return nil, fmt.Errorf("create the credentials secret: %w", forbidden(err))
	}
	cl.add(func(ctx context.Context) error { return k.kc.DeleteSecret(ctx, k.ns, objs.Secret.Metadata.Name) })
	fail := func(err error) (*tunnel, error) {
		if cerr := cl.run(ctx); cerr != nil {
			k.log.WithError(cerr).Warn("could not remove what was created")
		}
		return nil, err
	}
	fmt.Fprintf(k.opt.Out, "+ kubectl run %s -n %s --image %s (owned by pod %s) -- %s\n", objs.Pod.Metadata.Name, k.ns, k.cfg.Image, owner.Metadata.Name, strings.Join(objs.Pod.Spec.Containers[0].Args, " "))
	pod, err := k.kc.CreatePod(ctx, k.ns, objs.Pod)
	if err != nil {
		return fail(fmt.Errorf("create the sauce connect pod: %w", forbidden(err)))
	}
	cl.add(func(ctx context.Context) error { return k.kc.DeletePod(ctx, k.ns, pod.Metadata.Name, failureGrace) })
	if objs.Service != nil {
		if err := k.kc.CreateService(ctx, k.ns, *objs.Service); err != nil {
			return fail(fmt.Errorf("create the sauce connect service: %w", forbidden(err)))
		}
		cl.add(func(ctx context.Context) error { return k.kc.DeleteService(ctx, k.ns, objs.Service.Metadata.Name) })
	}
	ready, err := k.waitReady(ctx, pod)
	if err != nil {
		return fail(err)
	}
	t := &tunnel{id: pod.Metadata.Name, name: k.cfg.TunnelName, ep: k.endpoints(ready), readyIn: k.opt.Now().Sub(began)}
	cl.forget()
	k.report(t)
	return t, nil
}

// endpoints is where later steps reach SC's API: the Service's DNS name
// when there is one, else the pod IP.
func (k *kubeRun) endpoints(p kube.Pod) Endpoints {
	port := strconv.Itoa(k.cfg.APIPort)
	ep := Endpoints{Probe: "http://" + net.JoinHostPort(p.Status.PodIP, port)}
	ep.Container = ep.Probe
	if k.cfg.Kubernetes.Service {
		ep.Container = "http://" + net.JoinHostPort(p.Metadata.Name+"."+k.ns+".svc", port)
	}
	return ep
}

// podState reads a pod's state: ready, or a failure that will not heal
// (SC exited, the image cannot be pulled, the pod cannot be scheduled).
func podState(p kube.Pod) (ready bool, err error) {
	if c, ok := p.Condition("Ready"); ok && c.Status == "True" {
		return true, nil
	}
	if c, ok := p.Condition("PodScheduled"); ok && c.Status == "False" && c.Reason == "Unschedulable" {
		return false, fmt.Errorf("the sauce connect pod cannot be scheduled: %s; check the resource requests and the node selectors", c.Message)
	}
	for _, cs := range p.Status.ContainerStatuses {
		if t := cs.State.Terminated; t != nil {
			return false, &ExitedError{ExitCode: t.ExitCode, OOMKilled: t.Reason == "OOMKilled"}
		}
		if w := cs.State.Waiting; w != nil {
			switch w.Reason {
			case "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull":
				return false, fmt.Errorf("cannot pull image %s (%s): %s; check image, pull and image_pull_secret", cs.Image, w.Reason, w.Message)
			case "CreateContainerConfigError", "CreateContainerError":
				return false, fmt.Errorf("cannot create the sauce connect container (%s): %s", w.Reason, w.Message)
			}
		}
	}
	if p.Status.Phase == "Failed" {
		return false, fmt.Errorf("the sauce connect pod failed: %s %s", p.Status.Reason, p.Status.Message)
	}
	return false, nil
}

// watchPod follows a pod with a watch (re-opened when the server ends it)
// until until says done, the pod is deleted, or ctx ends.
func (k *kubeRun) watchPod(ctx context.Context, p kube.Pod, until func(kube.Pod) (bool, error)) (kube.Pod, error) {
	backoff := watchBackoff
	for {
		if done, err := until(p); done || err != nil {
			return p, err
		}
		events, err := k.kc.WatchPod(ctx, k.ns, p.Metadata.Name, p.Metadata.ResourceVersion)
		if err != nil {
			return p, fmt.Errorf("watch the sauce connect pod: %w", forbidden(err))
		}
		got := false
		for ev := range events {
			got = true
			switch ev.Type {
			case "DELETED":
				return p, errors.New("the sauce connect pod was deleted")
			case "ERROR":
				// The resource version expired: read the pod afresh.
				fresh, err := k.kc.GetPod(ctx, k.ns, p.Metadata.Name)
				if err != nil {
					return p, err
				}
				ev.Pod = fresh
			}
			p = ev.Pod
			if done, err := until(p); done || err != nil {
				return p, err
			}
		}
		if ctx.Err() != nil {
			return p, context.Cause(ctx)
		}
		// A stream that ended with nothing in it is not reopened at once: a
		// server that closes every watch would have the plugin spin.
		if got {
			backoff = watchBackoff
			continue
		}
		select {
		case <-ctx.Done():
			return p, context.Cause(ctx)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, watchBackoffMax)
	}
}

// The pause before a watch that ended empty is reopened.
const (
	watchBackoff    = 100 * time.Millisecond
	watchBackoffMax = 5 * time.Second
)

// waitReady waits until the pod is Ready, bounded by ready_timeout; on a
// failure it prints SC's last log lines, masked.
func (k *kubeRun) waitReady(ctx context.Context, pod kube.Pod) (kube.Pod, error) {
	wctx, cancel := context.WithTimeoutCause(ctx, k.cfg.ReadyTimeout, errReadyTimeout)
	defer cancel()
	began := time.Now()
	p, err := k.watchPod(wctx, pod, podState)
	if errors.Is(err, errReadyTimeout) {
		last := "phase " + p.Status.Phase
		if c, ok := p.Condition("Ready"); ok {
			last += ", Ready " + c.Status + " " + c.Reason
		}
		err = &TimeoutError{Awaited: "pod " + pod.Metadata.Name + " to become Ready (its readiness probe is GET /readyz)", After: time.Since(began), Last: last}
	}
	if err == nil {
		return p, nil
	}
	tail := k.lastLines(ctx, p)
	k.printLog(tail)
	if classified := classifyExit(err, tail); classified != err {
		return p, classified
	}
	return p, fmt.Errorf("wait for tunnel %s: %w", k.cfg.TunnelName, err)
}

var errReadyTimeout = errors.New("ready_timeout reached")

// learnSecrets adds the values in the tunnel's Secret to the masker before
// anything of SC's is printed: a stop or status step may know none of them.
func (k *kubeRun) learnSecrets(ctx context.Context, p kube.Pod) error {
	s, err := k.kc.GetSecret(ctx, k.ns, p.Metadata.Name+"-credentials")
	if kube.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the tunnel's secret to mask its values: %w", forbidden(err))
	}
	for key, v := range s.Data {
		if key == secretUsername {
			continue
		}
		// The whole value, and its parts that are secret alone: an
		// --option=value argument, a user:pass, a proxy URL's password.
		val := string(v)
		k.opt.Masker.Add(val)
		k.opt.Masker.Add(secretsOfArgs([]string{val})...)
		k.opt.Masker.Add(secretsOfOption("auth", val)...)
		k.opt.Masker.Add(proxyPassword(val)...)
	}
	return nil
}

// lastLines returns SC's last log lines: from the log API, or, where no
// kubelet serves it, from the termination message the kubelet wrote.
func (k *kubeRun) lastLines(ctx context.Context, p kube.Pod) string {
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if logs, err := k.kc.PodLogs(lctx, k.ns, p.Metadata.Name, scContainer, tailLines); err == nil && logs != "" {
		return logs
	}
	for _, cs := range p.Status.ContainerStatuses {
		if t := cs.State.Terminated; t != nil && t.Message != "" {
			return t.Message
		}
	}
	return ""
}

// reuse finds a pod of this tunnel from an earlier start: a Ready one is
// reused, anything else is deleted.
func (k *kubeRun) reuse(ctx context.Context) (*tunnel, error) {
	pods, err := k.kc.ListPods(ctx, k.ns, kubeSelector(k.cfg.TunnelName))
	if err != nil {
		return nil, fmt.Errorf("look for this tunnel's pod: %w", forbidden(err))
	}
	for _, p := range pods {
		if ready, _ := podState(p); ready && p.Metadata.DeletionTimestamp == nil {
			k.log.Infof("tunnel %s is already running and ready in pod %s; reusing it", k.cfg.TunnelName, p.Metadata.Name)
			t := &tunnel{id: p.Metadata.Name, name: k.cfg.TunnelName, ep: k.endpoints(p), reused: true}
			k.report(t)
			return t, nil
		}
		k.log.Infof("replacing pod %s of tunnel %s (phase %s)", p.Metadata.Name, k.cfg.TunnelName, p.Status.Phase)
		if err := k.remove(ctx, p.Metadata.Name, failureGrace); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// remove deletes a tunnel pod and its secret and service.
func (k *kubeRun) remove(ctx context.Context, name string, grace time.Duration) error {
	return errors.Join(
		forbidden(k.kc.DeletePod(ctx, k.ns, name, grace)),
		forbidden(k.kc.DeleteSecret(ctx, k.ns, name+"-credentials")),
		forbidden(k.kc.DeleteService(ctx, k.ns, name)),
	)
}

// stop deletes this tunnel's pod (stop_timeout is its grace period), its
// secret and service, after printing SC's last lines. Nothing to stop is a
// warning.
func (k *kubeRun) stop(ctx context.Context) error {
	pods, err := k.kc.ListPods(ctx, k.ns, kubeSelector(k.cfg.TunnelName))
	if err != nil {
		return fmt.Errorf("look for this tunnel's pod: %w", forbidden(err))
	}
	if len(pods) == 0 {
		k.log.Warnf("no tunnel named %s is running; nothing to stop", k.cfg.TunnelName)
		return nil
	}
	for _, p := range pods {
		if err := k.learnSecrets(ctx, p); err != nil {
			return err
		}
		k.printLog(k.lastLines(ctx, p))
		fmt.Fprintf(k.opt.Out, "+ kubectl delete pod %s -n %s --grace-period %d\n", p.Metadata.Name, k.ns, int(k.cfg.StopTimeout.Seconds()))
		if err := k.remove(ctx, p.Metadata.Name, k.cfg.StopTimeout); err != nil {
			return err
		}
		k.log.Infof("tunnel %s stopped (pod %s deleted)", k.cfg.TunnelName, p.Metadata.Name)
	}
	return nil
}

// status prints the tunnel pod's phase and readiness, and SC's /info when
// the pod is reachable.
func (k *kubeRun) status(ctx context.Context) error {
	pods, err := k.kc.ListPods(ctx, k.ns, kubeSelector(k.cfg.TunnelName))
	if err != nil {
		return fmt.Errorf("look for this tunnel's pod: %w", forbidden(err))
	}
	if len(pods) == 0 {
		return fmt.Errorf("no tunnel named %s is running; start one with action start", k.cfg.TunnelName)
	}
	p := pods[0]
	ready, _ := podState(p)
	fmt.Fprintf(k.opt.Out, "tunnel:    %s\npod:       %s (phase %s)\nready:     %t\n", k.cfg.TunnelName, p.Metadata.Name, p.Status.Phase, ready)
	if !ready {
		return fmt.Errorf("tunnel %s is not ready (pod phase %s)", k.cfg.TunnelName, p.Status.Phase)
	}
	ep := k.endpoints(p)
	fmt.Fprintf(k.opt.Out, "API:       %s\n", ep.Container)
	if code, body, err := apiGet(ctx, k.opt.HTTP, ep.Probe+"/info"); err == nil && code == http.StatusOK {
		fmt.Fprintf(k.opt.Out, "info:      %s\n", strings.TrimSpace(body))
	} else {
		fmt.Fprintf(k.opt.Out, "info:      not reachable from here (%v)\n", err)
	}
	return nil
}

// foreground keeps the tunnel for as long as the plugin runs (run mode).
func (k *kubeRun) foreground(ctx context.Context, t *tunnel) error {
	pod, err := k.kc.GetPod(ctx, k.ns, t.id)
	if err != nil {
		return err
	}
	_, err = k.watchPod(ctx, pod, func(p kube.Pod) (bool, error) {
		for _, cs := range p.Status.ContainerStatuses {
			if cs.State.Terminated != nil {
				return true, fmt.Errorf("sauce connect exited with code %d while the tunnel was up", cs.State.Terminated.ExitCode)
			}
		}
		return false, nil
	})
	if ctx.Err() != nil {
		k.log.Infof("%v: stopping tunnel %s", context.Cause(ctx), t.name)
		return k.remove(context.WithoutCancel(ctx), t.id, k.cfg.StopTimeout)
	}
	_ = k.remove(context.WithoutCancel(ctx), t.id, failureGrace)
	return err
}
