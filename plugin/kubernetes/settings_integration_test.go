package kubernetes_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/drone-sauce-connect/drone-sauce-connect/internal/testenv"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
)

// TestPlatformSettings: the settings a platform team needs reach the
// tunnel pod, and the real API server takes them: node selector,
// tolerations, a service account, and GOMEMLIMIT from the memory limit
// through the downward API. A service account that does not exist is
// refused by the API server, with nothing left behind.
func TestPlatformSettings(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	must(t, admin.Do(ctx, http.MethodPost, "/api/v1/namespaces/"+c.ns+"/serviceaccounts",
		map[string]any{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": map[string]any{"name": "sauce-connect"}}, nil))
	set := func(sa string) func(*plugin.Settings) {
		return func(s *plugin.Settings) {
			s.NodeSelector, s.ServiceAccount = `{"pool":"ci"}`, sa
			s.Tolerations = `[{"key":"ci","operator":"Equal","value":"true","effect":"NoSchedule"}]`
		}
	}
	tunnel := "platform-" + testenv.Random(6)
	c.kubelet(tunnel, 0, ready)
	if r := c.exec(users[1], tunnel, "start", set("sauce-connect")); r.err != nil {
		t.Fatalf("%v\n%s", r.err, r.out)
	}
	pods, _, _ := c.objects(tunnel)
	if len(pods) != 1 {
		t.Fatalf("%d pods", len(pods))
	}
	spec := pods[0].Spec
	var memLimit bool
	for _, e := range spec.Containers[0].Env {
		memLimit = memLimit || e.Name == "GOMEMLIMIT" && e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil && e.ValueFrom.ResourceFieldRef.Resource == "limits.memory"
	}
	// The API server adds its default not-ready/unreachable tolerations after ours.
	if spec.NodeSelector["pool"] != "ci" || spec.ServiceAccountName != "sauce-connect" || len(spec.Tolerations) == 0 || spec.Tolerations[0].Key != "ci" || !memLimit {
		t.Errorf("the pod as stored: %+v", spec)
	}
	if stop := c.exec(users[1], tunnel, "stop", nil); stop.err != nil {
		t.Fatalf("stop: %v\n%s", stop.err, stop.out)
	}

	other := "platform-" + testenv.Random(6)
	r := c.exec(users[1], other, "start", set("no-such-account"))
	if r.err == nil || !strings.Contains(r.err.Error(), "check that kubernetes_service_account no-such-account exists in namespace") {
		t.Fatalf("a missing service account: err = %v\n%s", r.err, r.out)
	}
	if pods, secrets, _ := c.objects(other); len(pods) != 0 || secrets != 0 {
		t.Errorf("a refused pod left %d pods, %d secrets", len(pods), secrets)
	}
	t.Logf("a missing service account: %v", r.err)
}
