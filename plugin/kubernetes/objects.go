package kubernetes

import (
	"fmt"
	"strconv"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/kube"
)

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

// annotationSauceID is the tunnel pod's annotation that records its
// tunnel's ID at Sauce Labs once Sauce confirmed it, for the backstop.
const annotationSauceID = "io.drone-sauce-connect/sauce-tunnel-id"
