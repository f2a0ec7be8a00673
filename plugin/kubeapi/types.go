package kubeapi

// The subset of the core/v1 API the plugin uses, with the API's JSON names.

// ObjectMeta is an object's metadata.
type ObjectMeta struct {
	Name              string            `json:"name,omitempty"`
	Namespace         string            `json:"namespace,omitempty"`
	UID               string            `json:"uid,omitempty"`
	ResourceVersion   string            `json:"resourceVersion,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
	Annotations       map[string]string `json:"annotations,omitempty"`
	OwnerReferences   []OwnerReference  `json:"ownerReferences,omitempty"`
	DeletionTimestamp *string           `json:"deletionTimestamp,omitempty"`
}

// OwnerReference makes an object a dependent of its owner, for the garbage collector.
type OwnerReference struct {
	APIVersion         string `json:"apiVersion"`
	Kind               string `json:"kind"`
	Name               string `json:"name"`
	UID                string `json:"uid"`
	BlockOwnerDeletion *bool  `json:"blockOwnerDeletion,omitempty"`
}

// Secret is a core/v1 Secret.
type Secret struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   ObjectMeta        `json:"metadata"`
	Type       string            `json:"type,omitempty"`
	StringData map[string]string `json:"stringData,omitempty"`
	// Data is what the API server returns (base64 in JSON).
	Data map[string][]byte `json:"data,omitempty"`
}

// Service is a core/v1 Service.
type Service struct {
	APIVersion string      `json:"apiVersion"`
	Kind       string      `json:"kind"`
	Metadata   ObjectMeta  `json:"metadata"`
	Spec       ServiceSpec `json:"spec"`
}

// ServiceSpec is a ClusterIP service's spec.
type ServiceSpec struct {
	Selector map[string]string `json:"selector"`
	Ports    []ServicePort     `json:"ports"`
	// ClusterIP is the address the API server gave the Service.
	ClusterIP string `json:"clusterIP,omitempty"`
}

// ServicePort is one port of a service.
type ServicePort struct {
	Name       string `json:"name"`
	Port       int    `json:"port"`
	TargetPort int    `json:"targetPort"`
}

// Pod is a core/v1 Pod.
type Pod struct {
	APIVersion string     `json:"apiVersion,omitempty"`
	Kind       string     `json:"kind,omitempty"`
	Metadata   ObjectMeta `json:"metadata"`
	Spec       PodSpec    `json:"spec"`
	Status     PodStatus  `json:"status,omitempty"`
}

// PodSpec is a pod's spec.
type PodSpec struct {
	Containers                    []Container            `json:"containers"`
	RestartPolicy                 string                 `json:"restartPolicy,omitempty"`
	TerminationGracePeriodSeconds *int64                 `json:"terminationGracePeriodSeconds,omitempty"`
	ActiveDeadlineSeconds         *int64                 `json:"activeDeadlineSeconds,omitempty"`
	ImagePullSecrets              []LocalObjectReference `json:"imagePullSecrets,omitempty"`
	AutomountServiceAccountToken  *bool                  `json:"automountServiceAccountToken,omitempty"`
	EnableServiceLinks            *bool                  `json:"enableServiceLinks,omitempty"`
	ServiceAccountName            string                 `json:"serviceAccountName,omitempty"`
	NodeSelector                  map[string]string      `json:"nodeSelector,omitempty"`
	Tolerations                   []Toleration           `json:"tolerations,omitempty"`
	SecurityContext               *PodSecurityContext    `json:"securityContext,omitempty"`
	Volumes                       []Volume               `json:"volumes,omitempty"`
}

// Volume is a pod's volume; only emptyDir is used.
type Volume struct {
	Name     string                `json:"name"`
	EmptyDir *EmptyDirVolumeSource `json:"emptyDir,omitempty"`
}

// EmptyDirVolumeSource is a scratch directory that lives with the pod.
type EmptyDirVolumeSource struct{}

// VolumeMount mounts a pod's volume into a container.
type VolumeMount struct {
	Name      string `json:"name"`
	MountPath string `json:"mountPath"`
}

// PodSecurityContext is what a pod's containers run as.
type PodSecurityContext struct {
	RunAsNonRoot   *bool           `json:"runAsNonRoot,omitempty"`
	RunAsUser      *int64          `json:"runAsUser,omitempty"`
	SeccompProfile *SeccompProfile `json:"seccompProfile,omitempty"`
}

// SeccompProfile names a seccomp profile (RuntimeDefault).
type SeccompProfile struct {
	Type string `json:"type"`
}

// SecurityContext is what one container may do.
type SecurityContext struct {
	AllowPrivilegeEscalation *bool         `json:"allowPrivilegeEscalation,omitempty"`
	Capabilities             *Capabilities `json:"capabilities,omitempty"`
}

// Capabilities are Linux capabilities added to or dropped from a container.
type Capabilities struct {
	Drop []string `json:"drop,omitempty"`
}

// Toleration lets a pod run on nodes with a matching taint.
type Toleration struct {
	Key               string `json:"key,omitempty"`
	Operator          string `json:"operator,omitempty"`
	Value             string `json:"value,omitempty"`
	Effect            string `json:"effect,omitempty"`
	TolerationSeconds *int64 `json:"tolerationSeconds,omitempty"`
}

// LocalObjectReference names an object in the same namespace.
type LocalObjectReference struct {
	Name string `json:"name"`
}

// Container is one container of a pod.
type Container struct {
	Name                     string               `json:"name"`
	Image                    string               `json:"image"`
	Args                     []string             `json:"args,omitempty"`
	Env                      []EnvVar             `json:"env,omitempty"`
	Ports                    []ContainerPort      `json:"ports,omitempty"`
	ReadinessProbe           *Probe               `json:"readinessProbe,omitempty"`
	Resources                ResourceRequirements `json:"resources,omitempty"`
	ImagePullPolicy          string               `json:"imagePullPolicy,omitempty"`
	TerminationMessagePolicy string               `json:"terminationMessagePolicy,omitempty"`
	SecurityContext          *SecurityContext     `json:"securityContext,omitempty"`
	VolumeMounts             []VolumeMount        `json:"volumeMounts,omitempty"`
}

// EnvVar is an environment variable, by value or from a secret.
type EnvVar struct {
	Name      string        `json:"name"`
	Value     string        `json:"value,omitempty"`
	ValueFrom *EnvVarSource `json:"valueFrom,omitempty"`
}

// EnvVarSource takes a value from a secret.
type EnvVarSource struct {
	SecretKeyRef     *SecretKeySelector     `json:"secretKeyRef,omitempty"`
	ResourceFieldRef *ResourceFieldSelector `json:"resourceFieldRef,omitempty"`
}

// ResourceFieldSelector names a resource of the container (the downward API).
type ResourceFieldSelector struct {
	Resource string `json:"resource"`
}

// SecretKeySelector names one key of a secret.
type SecretKeySelector struct {
	Name string `json:"name"`
	Key  string `json:"key"`
}

// ContainerPort is a port a container listens on.
type ContainerPort struct {
	Name          string `json:"name,omitempty"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol,omitempty"`
}

// Probe is an HTTP readiness probe.
type Probe struct {
	HTTPGet          *HTTPGetAction `json:"httpGet,omitempty"`
	PeriodSeconds    int            `json:"periodSeconds,omitempty"`
	TimeoutSeconds   int            `json:"timeoutSeconds,omitempty"`
	FailureThreshold int            `json:"failureThreshold,omitempty"`
}

// HTTPGetAction is a GET on the pod's IP.
type HTTPGetAction struct {
	Path string `json:"path"`
	Port int    `json:"port"`
}

// ResourceRequirements are requests and limits ("cpu", "memory").
type ResourceRequirements struct {
	Requests map[string]string `json:"requests,omitempty"`
	Limits   map[string]string `json:"limits,omitempty"`
}

// PodStatus is what the kubelet reports.
type PodStatus struct {
	Phase             string            `json:"phase,omitempty"`
	PodIP             string            `json:"podIP,omitempty"`
	Reason            string            `json:"reason,omitempty"`
	Message           string            `json:"message,omitempty"`
	Conditions        []PodCondition    `json:"conditions,omitempty"`
	ContainerStatuses []ContainerStatus `json:"containerStatuses,omitempty"`
}

// PodCondition is one condition (Ready, PodScheduled, …).
type PodCondition struct {
	Type    string `json:"type"`
	Status  string `json:"status"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// ContainerStatus is one container's state.
type ContainerStatus struct {
	Name         string         `json:"name"`
	Ready        bool           `json:"ready"`
	RestartCount int            `json:"restartCount"`
	Image        string         `json:"image"`
	ImageID      string         `json:"imageID"`
	State        ContainerState `json:"state"`
}

// ContainerState is waiting, running or terminated.
type ContainerState struct {
	Waiting    *StateWaiting    `json:"waiting,omitempty"`
	Running    *StateRunning    `json:"running,omitempty"`
	Terminated *StateTerminated `json:"terminated,omitempty"`
}

// StateWaiting is a container not yet running.
type StateWaiting struct {
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// StateRunning is a running container.
type StateRunning struct {
	StartedAt string `json:"startedAt,omitempty"`
}

// StateTerminated is a container that exited.
type StateTerminated struct {
	ExitCode int    `json:"exitCode"`
	Reason   string `json:"reason,omitempty"`
	Message  string `json:"message,omitempty"`
}

// Condition returns the pod's condition of that type.
func (p Pod) Condition(t string) (PodCondition, bool) {
	for _, c := range p.Status.Conditions {
		if c.Type == t {
			return c, true
		}
	}
	return PodCondition{}, false
}
