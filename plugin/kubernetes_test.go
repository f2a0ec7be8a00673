package plugin

import (
	"errors"
	"strings"
	"testing"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/kube"
)

func TestPodState(t *testing.T) {
	waiting := func(reason string) kube.Pod {
		return kube.Pod{Status: kube.PodStatus{ContainerStatuses: []kube.ContainerStatus{{Image: "sc:5", State: kube.ContainerState{Waiting: &kube.StateWaiting{Reason: reason, Message: "m"}}}}}}
	}
	for _, tc := range []struct {
		name  string
		pod   kube.Pod
		ready bool
		err   string
	}{
		{"ready", kube.Pod{Status: kube.PodStatus{Conditions: []kube.PodCondition{{Type: "Ready", Status: "True"}}}}, true, ""},
		{"still coming up", kube.Pod{Status: kube.PodStatus{Phase: "Pending"}}, false, ""},
		{"unschedulable", kube.Pod{Status: kube.PodStatus{Conditions: []kube.PodCondition{{Type: "PodScheduled", Status: "False", Reason: "Unschedulable", Message: "0/1 nodes"}}}}, false, "cannot be scheduled: 0/1 nodes"},
		{"exited", kube.Pod{Status: kube.PodStatus{ContainerStatuses: []kube.ContainerStatus{{State: kube.ContainerState{Terminated: &kube.StateTerminated{ExitCode: 1}}}}}}, false, "exited with code 1"},
		{"OOM", kube.Pod{Status: kube.PodStatus{ContainerStatuses: []kube.ContainerStatus{{State: kube.ContainerState{Terminated: &kube.StateTerminated{ExitCode: 137, Reason: "OOMKilled"}}}}}}, false, "out of memory"},
		{"pull", waiting("ImagePullBackOff"), false, "cannot pull image sc:5 (ImagePullBackOff)"},
		{"config", waiting("CreateContainerConfigError"), false, "cannot create the sauce connect container"},
		{"creating is no failure", waiting("ContainerCreating"), false, ""},
		{"failed", kube.Pod{Status: kube.PodStatus{Phase: "Failed", Reason: "Evicted"}}, false, "pod failed: Evicted"},
	} {
		ready, err := podState(tc.pod)
		if ready != tc.ready || (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: ready %t, %v; want %t, %q", tc.name, ready, err, tc.ready, tc.err)
		}
	}
}

// TestClassifyExit: SC's error lines decide; only an early exit for another
// reason is retried.
func TestClassifyExit(t *testing.T) {
	exited := &ExitedError{ExitCode: 1}
	for _, tc := range []struct {
		name, log string
		retry     bool
		code      int
	}{
		{"credentials", "2026/01/01 10:00:00.000000 [control] [ERROR] fatal error exiting: create tunnel: 401 Unauthorized", false, ExitCredentials},
		{"tunnel limit", "[control] [ERROR] fatal error exiting: create tunnel: Too many active tunnels: 10; allowed: 10", false, ExitFailure},
		{"flags", "Error: unknown flag: --nope", false, ExitFailure},
		{"network", "[control] [ERROR] fatal error exiting: create tunnel: dial tcp: no such host", true, ExitFailure},
		{"a 401 in a timestamp is no refusal", "2026/01/01 16:45:16.401367 [control] [INFO] starting\n[control] [ERROR] fatal error exiting: lost", true, ExitFailure},
	} {
		err := classifyExit(exited, tc.log)
		if retryable(err) != tc.retry || ExitCode(err) != tc.code {
			t.Errorf("%s: %v retried %t, exit %d; want %t, %d", tc.name, err, retryable(err), ExitCode(err), tc.retry, tc.code)
		}
	}
	other := errors.New("engine gone")
	if classifyExit(other, "fatal error exiting: 401") != other || retryable(other) {
		t.Error("an error other than SC's exit was classified or retried")
	}
}
