package kubernetes

import (
	"fmt"
	"strconv"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/kubeapi"
)

// objectSet are what the Kubernetes backend creates for one tunnel.
type objectSet struct {
	Secret  kubeapi.Secret
	Pod     kubeapi.Pod
	Service *kubeapi.Service
}

// kubeSelector selects the tunnel pods of one tunnel.
func kubeSelector(tunnel string) string {
	return plugin.LabelManaged + "=true," + plugin.LabelTunnel + "=" + labelValue(tunnel) + "," + plugin.LabelRole + "=" + plugin.RoleTunnel
}

// objects turns the settings into the tunnel's Secret, Pod and
// (optionally) Service, all owned by the build pod so that the garbage
// collector removes them when it goes. The credentials are only in the
// Secret; the Pod takes them by reference. It is pure and golden-tested.
func objects(c plugin.Config, owner kubeapi.Pod, now time.Time) objectSet {
	name := kubeName(c.ContainerName)
	secretName := credentialsOf(name)
	// No blockOwnerDeletion: where owner references are enforced it would
	// need update on pods/finalizers, and only foreground deletion uses it.
	owners := []kubeapi.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: owner.Metadata.Name, UID: owner.Metadata.UID}}
	// No runner labels to read here: max_lifetime, else the default.
	expires := plugin.Lifetime(c, now)
	labels := plugin.Labels(c, now, expires, nil)
	labels[plugin.LabelRole] = plugin.RoleTunnel
	// Until then a concurrent start of the tunnel waits for this pod.
	labels[plugin.LabelReadyBy] = strconv.FormatInt(now.Add(c.ReadyTimeout).Unix(), 10)
	for k, v := range labels {
		labels[k] = labelValue(v)
	}
	meta := func(n string) kubeapi.ObjectMeta {
		return kubeapi.ObjectMeta{Name: n, Namespace: owner.Metadata.Namespace, Labels: labels, OwnerReferences: owners}
	}

	env, args, secretData := scInputs(c, secretName)
	pod := tunnelPod(c, meta(name), env, args)
	// The kubelet ends the pod at max_lifetime (SIGTERM and the grace
	// period, as a stop), as the Docker backend's watchdog does.
	lifetime := int64(expires.Sub(now).Seconds())
	pod.Spec.ActiveDeadlineSeconds = &lifetime
	objs := objectSet{
		Secret: kubeapi.Secret{APIVersion: "v1", Kind: "Secret", Metadata: meta(secretName), Type: "Opaque",
			StringData: secretData},
		Pod: pod,
	}
	if c.Kubernetes.Service {
		objs.Service = &kubeapi.Service{APIVersion: "v1", Kind: "Service", Metadata: meta(name), Spec: kubeapi.ServiceSpec{
			Selector: map[string]string{plugin.LabelTunnel: labels[plugin.LabelTunnel], plugin.LabelRole: plugin.RoleTunnel},
			Ports:    []kubeapi.ServicePort{{Name: "api", Port: c.APIPort, TargetPort: c.APIPort}},
		}}
	}
	return objs
}

// scInputs are SC's variables and arguments: the same as the Docker
// backend's, with the credentials and every other secret value by
// reference to the Secret (a secret argument as $(VAR), which the kubelet
// expands), and the Secret's data.
func scInputs(c plugin.Config, secretName string) (env []kubeapi.EnvVar, args []string, secretData map[string]string) {
	secretData = map[string]string{secretUsername: c.Username, secretAccessKey: c.AccessKey.Value()}
	fromSecret := func(name, key string) kubeapi.EnvVar {
		return kubeapi.EnvVar{Name: name, ValueFrom: &kubeapi.EnvVarSource{SecretKeyRef: &kubeapi.SecretKeySelector{Name: secretName, Key: key}}}
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
			env = append(env, kubeapi.EnvVar{Name: e.Name, Value: e.Value})
		}
	}
	if _, limited := c.Kubernetes.Limits["memory"]; limited {
		// SC is a Go program: let its garbage collector work to the pod's
		// memory limit instead of being OOM-killed at it (as Sauce's own
		// Helm chart does).
		env = append(env, kubeapi.EnvVar{Name: "GOMEMLIMIT", ValueFrom: &kubeapi.EnvVarSource{ResourceFieldRef: &kubeapi.ResourceFieldSelector{Resource: "limits.memory"}}})
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
func tunnelPod(c plugin.Config, meta kubeapi.ObjectMeta, env []kubeapi.EnvVar, args []string) kubeapi.Pod {
	grace := int64(c.StopTimeout.Seconds())
	no := false
	pod := kubeapi.Pod{
		APIVersion: "v1", Kind: "Pod", Metadata: meta,
		Spec: kubeapi.PodSpec{
			RestartPolicy:                 "Never",
			TerminationGracePeriodSeconds: &grace,
			AutomountServiceAccountToken:  &no,
			EnableServiceLinks:            &no,
			Containers: []kubeapi.Container{{
				Name: scContainer, Image: c.Image, Args: args, Env: env,
				Ports:           []kubeapi.ContainerPort{{Name: "api", ContainerPort: c.APIPort, Protocol: "TCP"}},
				ReadinessProbe:  &kubeapi.Probe{HTTPGet: &kubeapi.HTTPGetAction{Path: "/readyz", Port: c.APIPort}, PeriodSeconds: 1, TimeoutSeconds: 1, FailureThreshold: 1},
				Resources:       kubeapi.ResourceRequirements{Requests: c.Kubernetes.Requests, Limits: c.Kubernetes.Limits},
				ImagePullPolicy: map[plugin.Pull]string{plugin.PullIfNotExists: "IfNotPresent", plugin.PullAlways: "Always", plugin.PullNever: "Never"}[c.Pull],
				// On failure the kubelet puts SC's last log lines in the status.
				TerminationMessagePolicy: "FallbackToLogsOnError",
			}},
		},
	}
	if c.Kubernetes.ImagePullSecret != "" {
		pod.Spec.ImagePullSecrets = []kubeapi.LocalObjectReference{{Name: c.Kubernetes.ImagePullSecret}}
	}
	pod.Spec.NodeSelector = c.Kubernetes.NodeSelector
	pod.Spec.ServiceAccountName = c.Kubernetes.ServiceAccount
	for _, t := range c.Kubernetes.Tolerations {
		pod.Spec.Tolerations = append(pod.Spec.Tolerations, kubeapi.Toleration(t))
	}
	if uid := c.Kubernetes.RunAsUser; uid != nil {
		// What the restricted Pod Security level asks of a pod.
		yes := true
		pod.Spec.SecurityContext = &kubeapi.PodSecurityContext{RunAsNonRoot: &yes, RunAsUser: uid, SeccompProfile: &kubeapi.SeccompProfile{Type: "RuntimeDefault"}}
		pod.Spec.Containers[0].SecurityContext = &kubeapi.SecurityContext{AllowPrivilegeEscalation: &no, Capabilities: &kubeapi.Capabilities{Drop: []string{"ALL"}}}
		// Not root, SC may not write the image's own /tmp (its API socket).
		pod.Spec.Volumes = []kubeapi.Volume{{Name: "tmp", EmptyDir: &kubeapi.EmptyDirVolumeSource{}}}
		pod.Spec.Containers[0].VolumeMounts = []kubeapi.VolumeMount{{Name: "tmp", MountPath: "/tmp"}}
	}
	return pod
}

// credentialsOf is the name of the Secret that holds the credentials of
// the tunnel pod named pod.
func credentialsOf(pod string) string { return pod + "-credentials" }

// annotationSauceID is the tunnel pod's annotation that records its
// tunnel's ID at Sauce Labs once Sauce confirmed it, for the backstop.
const annotationSauceID = "io.drone-sauce-connect/sauce-tunnel-id"
