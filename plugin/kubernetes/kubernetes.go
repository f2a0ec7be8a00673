// Package kubernetes is the Kubernetes backend: where pipelines run as pods
// and there is no Docker socket, it runs Sauce Connect 5 as a pod owned by
// the build pod, with a Secret for the credentials (and a Service), so that
// the cluster removes the tunnel with the build pod whatever happens.
package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
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

// ObjectSet are what the Kubernetes backend creates for one tunnel.
type ObjectSet struct {
	Secret  kube.Secret
	Pod     kube.Pod
	Service *kube.Service
}

// kubeSelector selects the tunnel pods of one tunnel.
func kubeSelector(tunnel string) string {
	return plugin.LabelManaged + "=true," + plugin.LabelTunnel + "=" + labelValue(tunnel) + "," + plugin.LabelRole + "=" + plugin.RoleTunnel
}

// Objects turns the settings into the tunnel's Secret, Pod and
// (optionally) Service, all owned by the build pod so that the garbage
// collector removes them when it goes. The credentials are only in the
// Secret; the Pod takes them by reference. It is pure and golden-tested.
func Objects(c plugin.Config, owner kube.Pod, now time.Time) ObjectSet {
	name := kubeName(c.ContainerName)
	secretName := name + "-credentials"
	// No blockOwnerDeletion: where owner references are enforced it would
	// need update on pods/finalizers, and only foreground deletion uses it.
	owners := []kube.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: owner.Metadata.Name, UID: owner.Metadata.UID}}
	// No runner labels to read here: max_lifetime, else the default.
	expires := plugin.Lifetime(c, now)
	labels := plugin.Labels(c, now, expires, nil)
	labels[plugin.LabelRole] = plugin.RoleTunnel
	// Until then a concurrent start of the tunnel waits for this pod.
	labels[plugin.LabelReadyBy] = strconv.FormatInt(now.Add(c.ReadyTimeout).Unix(), 10)
	for k, v := range labels {
		labels[k] = labelValue(v)
	}
	meta := func(n string) kube.ObjectMeta {
		return kube.ObjectMeta{Name: n, Namespace: owner.Metadata.Namespace, Labels: labels, OwnerReferences: owners}
	}

	env, args, secretData := scInputs(c, secretName)
	pod := tunnelPod(c, meta(name), env, args)
	// The kubelet ends the pod at max_lifetime (SIGTERM and the grace
	// period, as a stop), as the Docker backend's watchdog does.
	lifetime := int64(expires.Sub(now).Seconds())
	pod.Spec.ActiveDeadlineSeconds = &lifetime
	objs := ObjectSet{
		Secret: kube.Secret{APIVersion: "v1", Kind: "Secret", Metadata: meta(secretName), Type: "Opaque",
			StringData: secretData},
		Pod: pod,
	}
	if c.Kubernetes.Service {
		objs.Service = &kube.Service{APIVersion: "v1", Kind: "Service", Metadata: meta(name), Spec: kube.ServiceSpec{
			Selector: map[string]string{plugin.LabelTunnel: labels[plugin.LabelTunnel], plugin.LabelRole: plugin.RoleTunnel},
			Ports:    []kube.ServicePort{{Name: "api", Port: c.APIPort, TargetPort: c.APIPort}},
		}}
	}
	return objs
}

// scInputs are SC's variables and arguments: the same as the Docker
// backend's, with the credentials and every other secret value by
// reference to the Secret (a secret argument as $(VAR), which the kubelet
// expands), and the Secret's data.
func scInputs(c plugin.Config, secretName string) (env []kube.EnvVar, args []string, secretData map[string]string) {
	secretData = map[string]string{secretUsername: c.Username, secretAccessKey: c.AccessKey.Value()}
	fromSecret := func(name, key string) kube.EnvVar {
		return kube.EnvVar{Name: name, ValueFrom: &kube.EnvVarSource{SecretKeyRef: &kube.SecretKeySelector{Name: secretName, Key: key}}}
	}
	for _, e := range plugin.SCEnv(c, ":"+strconv.Itoa(c.APIPort)) {
		switch {
		case e.Name == "SAUCE_USERNAME":
			env = append(env, fromSecret(e.Name, secretUsername))
		case e.Name == "SAUCE_ACCESS_KEY":
			env = append(env, fromSecret(e.Name, secretAccessKey))
		case e.Secret || len(plugin.SecretsOfEnv([]string{e.Name + "=" + e.Value})) > 0:
			secretData[e.Name] = e.Value
			env = append(env, fromSecret(e.Name, e.Name))
		default:
			env = append(env, kube.EnvVar{Name: e.Name, Value: e.Value})
		}
	}
	if _, limited := c.Kubernetes.Limits["memory"]; limited {
		// SC is a Go program: let its garbage collector work to the pod's
		// memory limit instead of being OOM-killed at it (as Sauce's own
		// Helm chart does).
		env = append(env, kube.EnvVar{Name: "GOMEMLIMIT", ValueFrom: &kube.EnvVarSource{ResourceFieldRef: &kube.ResourceFieldSelector{Resource: "limits.memory"}}})
	}
	args = append([]string{"run"}, c.SCArgs...)
	for _, a := range plugin.SecretArgs(args) {
		v := fmt.Sprintf("DSC_SECRET_ARG_%d", a.Index)
		secretData[v] = args[a.Index]
		env = append(env, fromSecret(v, v))
		args[a.Index] = "$(" + v + ")"
	}
	return env, args, secretData
}

// tunnelPod is SC's pod: its container and probe, and where and as whom
// it runs (pull secret, node selector, tolerations, service account, the
// restricted Pod Security level's asks).
func tunnelPod(c plugin.Config, meta kube.ObjectMeta, env []kube.EnvVar, args []string) kube.Pod {
	grace := int64(c.StopTimeout.Seconds())
	no := false
	pod := kube.Pod{
		APIVersion: "v1", Kind: "Pod", Metadata: meta,
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
				ImagePullPolicy: map[plugin.Pull]string{plugin.PullIfNotExists: "IfNotPresent", plugin.PullAlways: "Always", plugin.PullNever: "Never"}[c.Pull],
				// On failure the kubelet puts SC's last log lines in the status.
				TerminationMessagePolicy: "FallbackToLogsOnError",
			}},
		},
	}
	if c.Kubernetes.ImagePullSecret != "" {
		pod.Spec.ImagePullSecrets = []kube.LocalObjectReference{{Name: c.Kubernetes.ImagePullSecret}}
	}
	pod.Spec.NodeSelector = c.Kubernetes.NodeSelector
	pod.Spec.ServiceAccountName = c.Kubernetes.ServiceAccount
	for _, t := range c.Kubernetes.Tolerations {
		pod.Spec.Tolerations = append(pod.Spec.Tolerations, kube.Toleration(t))
	}
	if uid := c.Kubernetes.RunAsUser; uid != nil {
		// What the restricted Pod Security level asks of a pod.
		yes := true
		pod.Spec.SecurityContext = &kube.PodSecurityContext{RunAsNonRoot: &yes, RunAsUser: uid, SeccompProfile: &kube.SeccompProfile{Type: "RuntimeDefault"}}
		pod.Spec.Containers[0].SecurityContext = &kube.SecurityContext{AllowPrivilegeEscalation: &no, Capabilities: &kube.Capabilities{Drop: []string{"ALL"}}}
		// Not root, SC may not write the image's own /tmp (its API socket).
		pod.Spec.Volumes = []kube.Volume{{Name: "tmp", EmptyDir: &kube.EmptyDirVolumeSource{}}}
		pod.Spec.Containers[0].VolumeMounts = []kube.VolumeMount{{Name: "tmp", MountPath: "/tmp"}}
	}
	return pod
}

// Backend is the Kubernetes backend.
type Backend struct {
	*plugin.Session
	kc *kube.Client
	ns string
}

var _ plugin.Backend = (*Backend)(nil)

// New returns the Kubernetes backend for session s; ns is the service
// account's namespace, used unless kubernetes_namespace is set. Settings
// the backend cannot honour are refused (exit 2).
func New(s *plugin.Session, kc *kube.Client, ns string) (*Backend, error) {
	c := s.Cfg
	if c.ConfigFile != "" && (c.Action == plugin.ActionStart || c.Action == plugin.ActionRun) {
		// The file is in the build pod's workspace, which the tunnel pod cannot see.
		return nil, &plugin.SettingsError{Problems: []string{"invalid setting config_file (PLUGIN_CONFIG_FILE): not available with the Kubernetes backend, whose tunnel pod cannot see the workspace; pass the options as settings or sc_args"}}
	}
	if _, _, ok := plugin.APIBasicAuth(plugin.EnvList(c.Env), c.SCArgs, nil); ok {
		// The kubelet's readiness probe cannot send credentials from a Secret.
		return nil, &plugin.SettingsError{Problems: []string{"invalid setting env (PLUGIN_ENV): SAUCE_API_BASIC_AUTH (or --api-basic-auth) is not available with the Kubernetes backend, whose readiness probe cannot authenticate; leave the API without basic auth (the tunnel pod's API is reachable only in the cluster)"}}
	}
	if c.Kubernetes.Namespace != "" {
		ns = c.Kubernetes.Namespace
	}
	if c.Kubernetes.Pod == "" {
		s.Cfg.Kubernetes.Pod, _ = os.Hostname()
	}
	return &Backend{Session: s, kc: kc, ns: ns}, nil
}

// Start opens the tunnel, or reuses a ready one of its name.
func (k *Backend) Start(ctx context.Context) (*plugin.Tunnel, error) { return k.start(ctx) }

// Run keeps the tunnel up for as long as the plugin runs.
func (k *Backend) Run(ctx context.Context) error {
	t, err := k.start(ctx)
	if err != nil {
		return err
	}
	return k.foreground(ctx, t)
}

// Stop ends this pipeline's tunnel.
func (k *Backend) Stop(ctx context.Context) error { return k.stop(ctx) }

// Status says whether this pipeline's tunnel is up and ready.
func (k *Backend) Status(ctx context.Context) error { return k.status(ctx) }

// forbidden explains an RBAC refusal.
func forbidden(err error) error {
	if kube.IsForbidden(err) {
		return fmt.Errorf("%w; %s", err, rbacHint)
	}
	return err
}

// maxHostname is where the kubelet cuts a pod's name to make its hostname.
const maxHostname = 63

// buildPod finds the pod the plugin runs in, by name (HOSTNAME by default).
// The kubelet cuts a pod's hostname to 63 characters, so a build pod with a
// longer name (Harness and Drone name them after the pipeline) is not found
// by it: then it is the one pod whose name starts with those 63 characters
// and whose IP is one of this process's addresses.
func (k *Backend) buildPod(ctx context.Context) (kube.Pod, error) {
	name := k.Cfg.Kubernetes.Pod
	owner, err := k.kc.GetPod(ctx, k.ns, name)
	if err == nil || !kube.IsNotFound(err) || len(name) != maxHostname {
		return owner, err
	}
	pods, lerr := k.kc.ListPods(ctx, k.ns, "")
	if lerr != nil {
		return owner, err
	}
	mine := localAddresses()
	var found []kube.Pod
	for _, p := range pods {
		if strings.HasPrefix(p.Metadata.Name, name) && p.Status.PodIP != "" && mine[p.Status.PodIP] {
			found = append(found, p)
		}
	}
	if len(found) != 1 {
		return owner, fmt.Errorf("%w (a kubelet cuts hostnames to %d characters, and %d pods starting with it have this step's IP)", err, maxHostname, len(found))
	}
	k.Log.Debugf("build pod %s found by its IP %s (HOSTNAME is its name cut to %d characters)", found[0].Metadata.Name, found[0].Status.PodIP, maxHostname)
	return found[0], nil
}

// localAddresses are the IP addresses of this process's network interfaces.
func localAddresses() map[string]bool {
	out := map[string]bool{}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			out[n.IP.String()] = true
		}
	}
	return out
}

// start creates the Secret, the Pod (and the Service) owned by the build
// pod and waits, with a watch, until the pod is Ready.
func (k *Backend) start(ctx context.Context) (*plugin.Tunnel, error) {
	began := k.Opt.Now()
	owner, err := k.buildPod(ctx)
	if err != nil {
		return nil, fmt.Errorf("find the build pod %s in namespace %s (set kubernetes_pod): %w", k.Cfg.Kubernetes.Pod, k.ns, forbidden(err))
	}
	owner.Metadata.Namespace = k.ns
	deadline := began.Add(k.Cfg.ReadyTimeout)
	if t, err := k.reuse(ctx, deadline); err != nil || t != nil {
		return t, err
	}
	objs := Objects(k.Cfg, owner, began)
	fmt.Fprintf(k.Opt.Out, "+ kubectl create secret generic %s -n %s (username, access-key=***)\n", objs.Secret.Metadata.Name, k.ns)
	// What this start created is removed on failure by its UID alone: a
	// concurrent start of the tunnel may have objects of the same names.
	var cl plugin.Rollback
	secret, err := k.kc.CreateSecret(ctx, k.ns, objs.Secret)
	if kube.IsConflict(err) {
		// A concurrent start of this tunnel made its secret first: take
		// its tunnel when it is ready.
		k.Log.Infof("another start is bringing tunnel %s up; waiting for it", k.Cfg.TunnelName)
		return k.awaitOther(ctx, deadline)
	}
	if err != nil {
		return nil, fmt.Errorf("create the credentials secret: %w", forbidden(err))
	}
	cl.Add(func(ctx context.Context) error {
		return k.kc.DeleteOwn(ctx, kube.SecretPath(k.ns, secret.Metadata.Name), secret.Metadata.UID, nil)
	})
	fail := func(err error) (*plugin.Tunnel, error) {
		if cerr := cl.Do(ctx); cerr != nil {
			k.Log.WithError(cerr).Warn("could not remove what was created")
		}
		return nil, err
	}
	var svc kube.Service
	if objs.Service != nil {
		if svc, err = k.kc.CreateService(ctx, k.ns, *objs.Service); err != nil {
			return fail(fmt.Errorf("create the sauce connect service: %w", forbidden(err)))
		}
		cl.Add(func(ctx context.Context) error {
			return k.kc.DeleteOwn(ctx, kube.ServicePath(k.ns, svc.Metadata.Name), svc.Metadata.UID, nil)
		})
	}
	defer k.WarnNameInUse(ctx)()
	pod, ready, err := k.attempts(ctx, &cl, objs.Pod, owner, deadline)
	if err != nil {
		return fail(err)
	}
	t := &plugin.Tunnel{ID: pod.Metadata.Name, Where: "pod " + pod.Metadata.Name, Name: k.Cfg.TunnelName, Endpoints: k.endpoints(ready)}
	if err := k.Confirm(ctx, t, deadline); err != nil {
		k.PrintLog(k.lastLines(ctx, ready, scContainer))
		return fail(err)
	}
	k.recordSauceID(ctx, *t)
	if objs.Service != nil {
		k.awaitRoute(ctx, svc)
	}
	t.ReadyIn = k.Opt.Now().Sub(began)
	cl.Forget()
	k.Report(t)
	return t, nil
}

// attempts creates SC's pod and waits until it is ready, within deadline
// (ready_timeout from the start), starting it afresh up to retries times
// when SC exits early for a reason a retry can fix, as the Docker backend
// does. It returns the pod as created and as it became ready.
func (k *Backend) attempts(ctx context.Context, cl *plugin.Rollback, spec, owner kube.Pod, deadline time.Time) (created, ready kube.Pod, err error) {
	for attempt := 1; ; attempt++ {
		if created, err = k.createPod(ctx, spec, owner); err != nil {
			return created, ready, err
		}
		pod := created
		cl.Add(func(ctx context.Context) error {
			grace := plugin.FailureGrace
			return k.kc.DeleteOwn(ctx, kube.PodPath(k.ns, pod.Metadata.Name), pod.Metadata.UID, &grace)
		})
		if ready, err = k.waitReady(ctx, created, deadline.Sub(k.Opt.Now())); err == nil {
			return created, ready, nil
		}
		if err := k.RetryAfter(ctx, err, attempt, deadline); err != nil {
			return created, ready, err
		}
		if err := k.deletePodAndWait(ctx, created.Metadata.Name, deadline); err != nil {
			return created, ready, err
		}
	}
}

// createPod creates SC's pod, explaining the refusals of admission.
func (k *Backend) createPod(ctx context.Context, spec, owner kube.Pod) (kube.Pod, error) {
	fmt.Fprintf(k.Opt.Out, "+ kubectl run %s -n %s --image %s (owned by pod %s) -- %s\n", spec.Metadata.Name, k.ns, k.Cfg.Image, owner.Metadata.Name, strings.Join(spec.Spec.Containers[0].Args, " "))
	pod, err := k.kc.CreatePod(ctx, k.ns, spec)
	switch {
	case err == nil:
		return pod, nil
	case kube.IsForbidden(err) && strings.Contains(err.Error(), "violates PodSecurity"):
		// Admission, not RBAC: the namespace enforces a Pod Security level.
		hint := "set kubernetes_run_as_user to a non-root uid the image can run as, which makes the pod fit the restricted level"
		if k.Cfg.Kubernetes.RunAsUser != nil {
			hint = "the namespace's policy asks for more than the restricted level; run the tunnel in another namespace (kubernetes_namespace)"
		}
		return pod, fmt.Errorf("create the sauce connect pod: namespace %s refuses it: %w; %s", k.ns, err, hint)
	case k.Cfg.Kubernetes.ServiceAccount != "" && kube.IsForbidden(err):
		// Admission refuses a pod whose service account is missing with
		// the same 403 as RBAC: name both causes.
		return pod, fmt.Errorf("create the sauce connect pod: %w; check that kubernetes_service_account %s exists in namespace %s, and %s", err, k.Cfg.Kubernetes.ServiceAccount, k.ns, rbacHint)
	}
	return pod, fmt.Errorf("create the sauce connect pod: %w", forbidden(err))
}

// deletePodAndWait deletes a failed attempt's pod and waits, until
// deadline, until it is gone, so that the next attempt can take its name.
func (k *Backend) deletePodAndWait(ctx context.Context, name string, deadline time.Time) error {
	if err := k.kc.DeletePod(ctx, k.ns, name, plugin.FailureGrace); err != nil && !kube.IsNotFound(err) {
		return fmt.Errorf("delete the failed sauce connect pod: %w", forbidden(err))
	}
	for {
		_, err := k.kc.GetPod(ctx, k.ns, name)
		if kube.IsNotFound(err) {
			return nil
		}
		if k.Opt.Now().After(deadline) {
			return fmt.Errorf("the failed sauce connect pod %s was not gone before ready_timeout, so it could not be started again", name)
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// annotationSauceID is the tunnel pod's annotation that records its
// tunnel's ID at Sauce Labs once Sauce confirmed it, for the backstop.
const annotationSauceID = "io.drone-sauce-connect/sauce-tunnel-id"

// recordSauceID annotates the tunnel pod with its Sauce Labs ID; without it
// the backstop deletes nothing.
func (k *Backend) recordSauceID(ctx context.Context, t plugin.Tunnel) {
	if t.SauceID == "" {
		return
	}
	if err := k.kc.AnnotatePod(ctx, k.ns, t.ID, map[string]string{annotationSauceID: t.SauceID}); err != nil {
		k.Log.Warnf("could not record the tunnel's Sauce Labs ID on pod %s (%v; the Role needs patch on pods); if SC does not close the tunnel itself, nothing deletes it at Sauce Labs", t.ID, forbidden(err))
	}
}

// routeWait bounds the wait for a Service to route to a Ready tunnel pod.
const routeWait = 5 * time.Second

// awaitRoute waits, briefly, until the Service answers. The kubelet's Ready
// condition comes first; the endpoints controller and kube-proxy then take
// a moment to route to the pod, and a later step that came at once could
// find nothing there. From the build pod the plugin sees what later steps
// will see; if the Service does not answer in routeWait, that is a warning.
func (k *Backend) awaitRoute(ctx context.Context, svc kube.Service) {
	ip := svc.Spec.ClusterIP
	if ip == "" || ip == "None" {
		return
	}
	url := "http://" + net.JoinHostPort(ip, strconv.Itoa(k.Cfg.APIPort)) + "/readyz"
	began := time.Now()
	rctx, cancel := context.WithTimeout(ctx, routeWait)
	defer cancel()
	if last, ok := k.PollReady(rctx, url); !ok {
		k.Log.Warnf("service %s (%s) did not answer from this pod within %s (last: %s); later steps may have to retry", svc.Metadata.Name, ip, routeWait, last)
		return
	}
	k.Log.Debugf("service %s routes to the tunnel %s after the pod was Ready", svc.Metadata.Name, time.Since(began).Round(time.Millisecond))
}

// endpoints is where later steps reach SC's API: the Service's DNS name
// when there is one, else the pod IP.
func (k *Backend) endpoints(p kube.Pod) plugin.Endpoints {
	port := strconv.Itoa(k.Cfg.APIPort)
	ep := plugin.Endpoints{Probe: "http://" + net.JoinHostPort(p.Status.PodIP, port)}
	ep.Container = ep.Probe
	if k.Cfg.Kubernetes.Service {
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
func containerFailed(cs kube.ContainerStatus) error {
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
func (k *Backend) watchPod(ctx context.Context, p kube.Pod, until func(kube.Pod) (bool, error)) (kube.Pod, error) {
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
func (k *Backend) waitReady(ctx context.Context, pod kube.Pod, limit time.Duration) (kube.Pod, error) {
	wctx, cancel := context.WithTimeoutCause(ctx, limit, errReadyTimeout)
	defer cancel()
	wctx, probed := context.WithCancelCause(wctx)
	defer probed(nil)
	began := time.Now()
	p, err := k.watchPod(wctx, pod, k.probeAlongside(wctx, probed, podState))
	if errors.Is(err, errProbedReady) {
		k.Log.Debugf("pod %s: /readyz answered 200 at %s (before the kubelet's probe marked it Ready)", p.Metadata.Name, p.Status.PodIP)
		return p, nil
	}
	if errors.Is(err, errReadyTimeout) {
		last := "phase " + p.Status.Phase
		if c, ok := p.Condition("Ready"); ok {
			last += ", Ready " + c.Status + " " + c.Reason
		}
		err = &plugin.TimeoutError{Awaited: "pod " + pod.Metadata.Name + " to become Ready (its readiness probe is GET /readyz)", After: time.Since(began), Last: last}
	}
	if err == nil {
		return p, nil
	}
	tail := k.lastLines(ctx, p, scContainer)
	k.PrintLog(tail)
	if classified := k.ExplainExit(ctx, err, tail); classified != err {
		return p, classified
	}
	return p, fmt.Errorf("wait for tunnel %s: %w", k.Cfg.TunnelName, err)
}

var errReadyTimeout = errors.New("ready_timeout reached")

// errProbedReady ends the watch when SC's /readyz answered 200 directly.
var errProbedReady = errors.New("probed ready")

// probeAlongside wraps a readiness check of the watched pod so that, once
// the pod has an IP, the plugin also asks SC's /readyz there itself every
// plugin.PollPeriod: the kubelet probes at most once a second and then the Ready
// condition still has to reach the plugin, while a step in a pod can
// usually reach another pod's IP. Where it cannot (a NetworkPolicy, a
// plugin outside the cluster network), the probes fail quietly and the
// Ready condition decides. With kubernetes_service the later steps go
// through the Service, which routes only to pods the kubelet has marked
// Ready: there the condition always decides.
func (k *Backend) probeAlongside(ctx context.Context, probed context.CancelCauseFunc, check func(kube.Pod) (bool, error)) func(kube.Pod) (bool, error) {
	if k.Cfg.Kubernetes.Service {
		return check
	}
	probing := false
	return func(p kube.Pod) (bool, error) {
		if ip := p.Status.PodIP; ip != "" && !probing {
			probing = true
			go k.probe(ctx, probed, "http://"+net.JoinHostPort(ip, strconv.Itoa(k.Cfg.APIPort))+"/readyz")
		}
		if err := context.Cause(ctx); errors.Is(err, errProbedReady) {
			return true, err
		}
		return check(p)
	}
}

// probe asks url until it answers 200, then ends the readiness watch.
func (k *Backend) probe(ctx context.Context, probed context.CancelCauseFunc, url string) {
	if _, ok := k.PollReady(ctx, url); ok {
		probed(errProbedReady)
	}
}

// learnSecrets adds the values in the tunnel's Secret to the masker before
// anything of SC's is printed: a stop or status step may know none of them.
// It returns the Secret (empty when there is none).
func (k *Backend) learnSecrets(ctx context.Context, p kube.Pod) (kube.Secret, error) {
	s, err := k.kc.GetSecret(ctx, k.ns, p.Metadata.Name+"-credentials")
	if kube.IsNotFound(err) {
		return kube.Secret{}, nil
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
func scEnv(p kube.Pod, s kube.Secret) []string {
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

// ungraceful says how SC ended without its graceful shutdown, "" when it
// had one: before is the pod as the stop found it, killed whether the
// kubelet's grace period (stop_timeout) ran out.
func ungraceful(before kube.Pod, killed bool) string {
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

// mask adds a secret value to the masker: the whole value, and its parts
// that are secret alone (an --option=value argument, a user:pass, a proxy
// URL's password).
func (k *Backend) mask(val string) {
	k.Opt.Masker.Add(val)
	k.Opt.Masker.Add(plugin.SecretsOfArgs([]string{val})...)
	k.Opt.Masker.Add(plugin.SecretsOfOption("auth", val)...)
	k.Opt.Masker.Add(plugin.ProxyPassword(val)...)
}

// lastLines returns SC's last log lines: from the log API, or, where no
// kubelet serves it, from the termination message the kubelet wrote.
func (k *Backend) lastLines(ctx context.Context, p kube.Pod, container string) string {
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

// reuse finds a pod of this tunnel from an earlier or a concurrent start: a
// Ready one is reused; one still within the ready_timeout of the start that
// created it (its ready-by label) is waited for, until deadline, so that
// two starts of one tunnel at once share the tunnel that won; anything
// else is deleted.
func (k *Backend) reuse(ctx context.Context, deadline time.Time) (*plugin.Tunnel, error) {
	pods, err := k.kc.ListPods(ctx, k.ns, kubeSelector(k.Cfg.TunnelName))
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
		if until := time.Unix(readyBy, 0); k.Opt.Now().Before(until) {
			k.Log.Infof("another start is bringing tunnel %s up in pod %s; waiting for it", k.Cfg.TunnelName, p.Metadata.Name)
			if deadline.Before(until) {
				until = deadline
			}
			if ready, err := k.waitReady(ctx, p, until.Sub(k.Opt.Now())); err == nil {
				return k.reused(ready), nil
			}
		}
		k.Log.Infof("replacing pod %s of tunnel %s (phase %s)", p.Metadata.Name, k.Cfg.TunnelName, p.Status.Phase)
		if err := k.remove(ctx, p.Metadata.Name, plugin.FailureGrace); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// reused hands over a ready tunnel pod another start made.
func (k *Backend) reused(p kube.Pod) *plugin.Tunnel {
	k.Log.Infof("tunnel %s is already running and ready in pod %s; reusing it", k.Cfg.TunnelName, p.Metadata.Name)
	t := &plugin.Tunnel{ID: p.Metadata.Name, Where: "pod " + p.Metadata.Name, Name: k.Cfg.TunnelName, Endpoints: k.endpoints(p), Reused: true,
		SauceID: p.Metadata.Annotations[annotationSauceID]}
	k.Report(t)
	return t
}

// otherPoll paces the look for a concurrent start's pod.
const otherPoll = 100 * time.Millisecond

// awaitOther waits, until deadline, for the tunnel a concurrent start is
// bringing up (it made the secret first): its pod, then its readiness.
func (k *Backend) awaitOther(ctx context.Context, deadline time.Time) (*plugin.Tunnel, error) {
	for k.Opt.Now().Before(deadline) {
		pods, err := k.kc.ListPods(ctx, k.ns, kubeSelector(k.Cfg.TunnelName))
		if err != nil {
			return nil, fmt.Errorf("look for this tunnel's pod: %w", forbidden(err))
		}
		for _, p := range pods {
			if p.Metadata.DeletionTimestamp != nil {
				continue
			}
			ready, err := k.waitReady(ctx, p, deadline.Sub(k.Opt.Now()))
			if err != nil {
				return nil, fmt.Errorf("the tunnel another start was bringing up did not become ready: %w", err)
			}
			return k.reused(ready), nil
		}
		select {
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		case <-time.After(otherPoll):
		}
	}
	return nil, &plugin.TimeoutError{Awaited: "the pod of the concurrent start of tunnel " + k.Cfg.TunnelName + " (its secret exists; remove it if no start is running)", After: k.Cfg.ReadyTimeout, Last: "no pod"}
}

// remove deletes a tunnel pod and its secret and service.
func (k *Backend) remove(ctx context.Context, name string, grace time.Duration) error {
	return errors.Join(
		forbidden(k.kc.DeletePod(ctx, k.ns, name, grace)),
		forbidden(k.kc.DeleteSecret(ctx, k.ns, name+"-credentials")),
		forbidden(k.kc.DeleteService(ctx, k.ns, name)),
	)
}

// stop deletes this tunnel's pod (stop_timeout is its grace period), its
// secret and service, after printing SC's last lines. Nothing to stop is a
// warning.
func (k *Backend) stop(ctx context.Context) error {
	pods, err := k.kc.ListPods(ctx, k.ns, kubeSelector(k.Cfg.TunnelName))
	if err != nil {
		return fmt.Errorf("look for this tunnel's pod: %w", forbidden(err))
	}
	if len(pods) == 0 {
		k.Log.Warnf("no tunnel named %s is running; nothing to stop", k.Cfg.TunnelName)
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
			plugin.Backstop(context.WithoutCancel(ctx), k.Log, scEnv(p, secret), k.Cfg.RESTURL, k.Cfg.TunnelName, p.Metadata.Annotations[annotationSauceID], why)
		}
	}
	return nil
}

// shutdown deletes one tunnel pod with stop_timeout as its grace period
// and follows SC's log until the container has ended, so that the stop
// step shows SC's drain (and waits for it), as `docker stop` does. It
// says whether the grace period ran out.
func (k *Backend) shutdown(ctx context.Context, p kube.Pod) (killed bool, err error) {
	began := k.Opt.Now()
	// Finish even if the plugin is being cancelled: a half-stopped tunnel helps nobody.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), k.Cfg.StopTimeout+plugin.CleanupTimeout)
	defer cancel()
	// The kubelet kills SC at the end of the grace period; its log stream
	// ends soon after (it checks an ended container's log once a second).
	lctx, lcancel := context.WithTimeout(ctx, k.Cfg.StopTimeout+logEndSlack)
	defer lcancel()
	logs, ferr := k.kc.FollowPodLogs(lctx, k.ns, p.Metadata.Name, scContainer, plugin.TailLines)
	if logs != nil {
		defer logs.Close()
	}
	exit := k.scExit(lctx, p)
	fmt.Fprintf(k.Opt.Out, "+ kubectl delete pod %s -n %s --grace-period %d\n", p.Metadata.Name, k.ns, int(k.Cfg.StopTimeout.Seconds()))
	if err := k.remove(ctx, p.Metadata.Name, k.Cfg.StopTimeout); err != nil {
		return false, err
	}
	if ferr != nil {
		// No log stream (a pod never started, a kubelet that serves no
		// logs): what the kubelet kept is all there is.
		k.Log.Debugf("follow sauce connect's log: %v", ferr)
		k.PrintLog(k.lastLines(ctx, p, scContainer))
	} else {
		b, err := io.ReadAll(io.LimitReader(logs, 1<<20))
		if err != nil {
			k.Log.Debugf("sauce connect's log stream did not end: %v", err)
		}
		k.PrintLog(string(b))
	}
	took := k.Opt.Now().Sub(began)
	// SIGKILL at the end of the grace period is exit 137; where the
	// kubelet's report of SC's end is not seen, the time it took tells.
	code := <-exit
	killed = code == 137 || code < 0 && took >= k.Cfg.StopTimeout
	if killed {
		k.Log.Warnf("sauce connect did not finish draining within stop_timeout (%s) and was killed by the kubelet; raise stop_timeout to give it longer", k.Cfg.StopTimeout)
	}
	k.Log.Infof("tunnel %s stopped (pod %s deleted) in %s", k.Cfg.TunnelName, p.Metadata.Name, took.Round(time.Millisecond))
	return killed, nil
}

// scExit follows a tunnel pod being deleted until it is gone (or ctx
// ends), and yields SC's exit code as the kubelet last reported it, -1
// when it reported none.
func (k *Backend) scExit(ctx context.Context, p kube.Pod) <-chan int {
	out := make(chan int, 1)
	go func() {
		code := -1
		_, _ = k.watchPod(ctx, p, func(p kube.Pod) (bool, error) {
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

// status prints the tunnel pod's phase and readiness, and SC's /info when
// the pod is reachable.
func (k *Backend) status(ctx context.Context) error {
	pods, err := k.kc.ListPods(ctx, k.ns, kubeSelector(k.Cfg.TunnelName))
	if err != nil {
		return fmt.Errorf("look for this tunnel's pod: %w", forbidden(err))
	}
	if len(pods) == 0 {
		return fmt.Errorf("no tunnel named %s is running; start one with action start", k.Cfg.TunnelName)
	}
	p := pods[0]
	ready, _ := podState(p)
	fmt.Fprintf(k.Opt.Out, "tunnel:    %s\npod:       %s (phase %s)\nready:     %t\n", k.Cfg.TunnelName, p.Metadata.Name, p.Status.Phase, ready)
	if !ready {
		return fmt.Errorf("tunnel %s is not ready (pod phase %s)", k.Cfg.TunnelName, p.Status.Phase)
	}
	ep := k.endpoints(p)
	fmt.Fprintf(k.Opt.Out, "API:       %s\n", ep.Container)
	if code, body, err := k.Get(ctx, ep.Probe+"/info"); err == nil && code == http.StatusOK {
		fmt.Fprintf(k.Opt.Out, "info:      %s\n", strings.TrimSpace(body))
	} else {
		fmt.Fprintf(k.Opt.Out, "info:      not reachable from here (%v)\n", err)
	}
	return nil
}

// foreground keeps the tunnel for as long as the plugin runs (run mode).
func (k *Backend) foreground(ctx context.Context, t *plugin.Tunnel) error {
	pod, err := k.kc.GetPod(ctx, k.ns, t.ID)
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
		k.Log.Infof("%v: stopping tunnel %s", context.Cause(ctx), t.Name)
		return k.remove(context.WithoutCancel(ctx), t.ID, k.Cfg.StopTimeout)
	}
	_ = k.remove(context.WithoutCancel(ctx), t.ID, plugin.FailureGrace)
	return err
}
