package kubernetes

import (
	"strings"
	"testing"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/kubeapi"
)

func TestPodState(t *testing.T) {
	waiting := func(reason string) kubeapi.Pod {
		return kubeapi.Pod{Status: kubeapi.PodStatus{ContainerStatuses: []kubeapi.ContainerStatus{{Image: "sc:5", State: kubeapi.ContainerState{Waiting: &kubeapi.StateWaiting{Reason: reason, Message: "m"}}}}}}
	}
	for _, tc := range []struct {
		name  string
		pod   kubeapi.Pod
		ready bool
		err   string
	}{
		{"ready", kubeapi.Pod{Status: kubeapi.PodStatus{Conditions: []kubeapi.PodCondition{{Type: "Ready", Status: "True"}}}}, true, ""},
		{"still coming up", kubeapi.Pod{Status: kubeapi.PodStatus{Phase: "Pending"}}, false, ""},
		{"unschedulable", kubeapi.Pod{Status: kubeapi.PodStatus{Conditions: []kubeapi.PodCondition{{Type: "PodScheduled", Status: "False", Reason: "Unschedulable", Message: "0/1 nodes"}}}}, false, "cannot be scheduled: 0/1 nodes"},
		{"exited", kubeapi.Pod{Status: kubeapi.PodStatus{ContainerStatuses: []kubeapi.ContainerStatus{{State: kubeapi.ContainerState{Terminated: &kubeapi.StateTerminated{ExitCode: 1}}}}}}, false, "exited with code 1"},
		{"OOM", kubeapi.Pod{Status: kubeapi.PodStatus{ContainerStatuses: []kubeapi.ContainerStatus{{State: kubeapi.ContainerState{Terminated: &kubeapi.StateTerminated{ExitCode: 137, Reason: "OOMKilled"}}}}}}, false, "out of memory"},
		{"pull", waiting("ImagePullBackOff"), false, "cannot pull image sc:5 (ImagePullBackOff)"},
		{"config", waiting("CreateContainerConfigError"), false, "cannot create the sauce connect container"},
		{"creating is no failure", waiting("ContainerCreating"), false, ""},
		{"failed", kubeapi.Pod{Status: kubeapi.PodStatus{Phase: "Failed", Reason: "Evicted"}}, false, "pod failed: Evicted"},
	} {
		ready, err := podState(tc.pod)
		if ready != tc.ready || (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: ready %t, %v; want %t, %q", tc.name, ready, err, tc.ready, tc.err)
		}
	}
}

func TestRepository(t *testing.T) {
	for ref, want := range map[string]string{
		"saucelabs/sauce-connect:5":                       "docker.io/saucelabs/sauce-connect",
		"docker.io/saucelabs/sauce-connect:5.2.3":         "docker.io/saucelabs/sauce-connect",
		"saucelabs/sauce-connect@sha256:0123":             "docker.io/saucelabs/sauce-connect",
		"sc-standin:e2e":                                  "docker.io/library/sc-standin",
		"docker.io/library/sc-standin":                    "docker.io/library/sc-standin",
		"mirror.corp:5000/saucelabs/sauce-connect:5":      "mirror.corp:5000/saucelabs/sauce-connect",
		"localhost/sauce-connect:5":                       "localhost/sauce-connect",
		"mirror.corp/saucelabs/sauce-connect:5@sha256:01": "mirror.corp/saucelabs/sauce-connect",
	} {
		if got := repository(ref); got != want {
			t.Errorf("repository(%q) = %q, want %q", ref, got, want)
		}
	}
	pod := kubeapi.Pod{Spec: kubeapi.PodSpec{Containers: []kubeapi.Container{{Name: "step-1", Image: "drone-sauce-connect/drone-sauce-connect:1"}, {Name: "step-2", Image: "docker.io/saucelabs/sauce-connect:5.2"}}}}
	if c, ok := sidecar(pod, "saucelabs/sauce-connect:5"); !ok || c.Name != "step-2" {
		t.Errorf("sidecar: %v %v", c.Name, ok)
	}
	if _, ok := sidecar(pod, "mirror.corp/saucelabs/sauce-connect:5"); ok {
		t.Error("a mirror's repository is another repository")
	}
}

// TestBackstopInputs: SC's environment as the kubelet builds it (the
// Secret's values in place of their references), and when a stop counts as
// ungraceful: SC already ended non-zero, or the grace period ran out.
func TestBackstopInputs(t *testing.T) {
	pod := kubeapi.Pod{Spec: kubeapi.PodSpec{Containers: []kubeapi.Container{{Name: scContainer, Env: []kubeapi.EnvVar{
		{Name: "SAUCE_REGION", Value: "eu-central"},
		{Name: "SAUCE_ACCESS_KEY", ValueFrom: &kubeapi.EnvVarSource{SecretKeyRef: &kubeapi.SecretKeySelector{Name: "x-credentials", Key: "access-key"}}},
		{Name: "GOMEMLIMIT", ValueFrom: &kubeapi.EnvVarSource{ResourceFieldRef: &kubeapi.ResourceFieldSelector{Resource: "limits.memory"}}},
	}}}}}
	env := scEnv(pod, kubeapi.Secret{Data: map[string][]byte{"access-key": []byte("k-1")}})
	if strings.Join(env, " ") != "SAUCE_REGION=eu-central SAUCE_ACCESS_KEY=k-1" {
		t.Errorf("SC's environment: %v", env)
	}
	if why := ungraceful(pod, false); why != "" {
		t.Errorf("a drained stop is ungraceful: %q", why)
	}
	if why := ungraceful(pod, true); why != "sauce connect was killed when stop_timeout ran out" {
		t.Errorf("killed: %q", why)
	}
	pod.Status.ContainerStatuses = []kubeapi.ContainerStatus{{Name: scContainer, State: kubeapi.ContainerState{Terminated: &kubeapi.StateTerminated{ExitCode: 1}}}}
	if why := ungraceful(pod, false); why != "sauce connect had already ended with exit code 1" {
		t.Errorf("crashed: %q", why)
	}
}
