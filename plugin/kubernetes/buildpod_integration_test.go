package kubernetes_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/drone-sauce-connect/drone-sauce-connect/internal/testenv"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/kubeapi"
)

// TestLongBuildPodName: a kubelet cuts a pod's hostname to 63 characters,
// so a build pod with a longer name is not found by HOSTNAME. The backend
// then takes the one pod whose name starts with it and whose IP is its own
// (here 127.0.0.1, an address of the test process, written as the pod's IP
// in the kubelet's place); a pod with the same prefix and another IP is not
// taken.
func TestLongBuildPodName(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	prefix := "harnessci-browser-tests-k8s-browser-tests-" + testenv.Random(8) + "-0123456789abcdefghij"
	prefix = prefix[:63]
	pod := func(suffix, ip string) kubeapi.Pod {
		no := false
		p, err := admin.CreatePod(ctx, c.ns, kubeapi.Pod{APIVersion: "v1", Kind: "Pod", Metadata: kubeapi.ObjectMeta{Name: prefix + suffix},
			Spec: kubeapi.PodSpec{AutomountServiceAccountToken: &no, Containers: []kubeapi.Container{{Name: "step", Image: "harness/ci-addon:1"}}}})
		must(t, err)
		p.Status = kubeapi.PodStatus{Phase: "Running", PodIP: ip}
		must(t, admin.Do(ctx, http.MethodPut, "/api/v1/namespaces/"+c.ns+"/pods/"+p.Metadata.Name+"/status", p, nil))
		return p
	}
	other := pod("-other", "10.244.9.9")
	mine := pod("-mine12", "127.0.0.1")
	if len(mine.Metadata.Name) <= 63 || other.Metadata.Name[:63] != mine.Metadata.Name[:63] {
		t.Fatal("the test's pod names do not share a 63-character prefix")
	}

	tunnel := "long-" + testenv.Random(6)
	c.kubelet(tunnel, 0, ready)
	r := c.exec(users[1], tunnel, "start", func(s *plugin.Settings) { s.KubernetesPod = prefix })
	if r.err != nil {
		t.Fatalf("%v\n%s", r.err, r.out)
	}
	pods, _, _ := c.objects(tunnel)
	if len(pods) != 1 || len(pods[0].Metadata.OwnerReferences) != 1 || pods[0].Metadata.OwnerReferences[0].UID != mine.Metadata.UID {
		t.Fatalf("the tunnel is not owned by the pod with this step's IP: %+v", pods)
	}
	if stop := c.exec(users[1], tunnel, "stop", nil); stop.err != nil {
		t.Fatalf("stop: %v\n%s", stop.err, stop.out)
	}

	// No pod of that prefix has this step's IP: a clear error, nothing made.
	must(t, admin.Do(ctx, http.MethodDelete, "/api/v1/namespaces/"+c.ns+"/pods/"+mine.Metadata.Name, nil, nil))
	r = c.exec(users[1], tunnel, "start", func(s *plugin.Settings) { s.KubernetesPod = prefix })
	if r.err == nil || !strings.Contains(r.err.Error(), "cuts hostnames to 63 characters, and 0 pods starting with it have this step's IP") {
		t.Fatalf("err = %v", r.err)
	}
	if pods, secrets, _ := c.objects(tunnel); len(pods) != 0 || secrets != 0 {
		t.Errorf("a failed lookup left %d pods, %d secrets", len(pods), secrets)
	}
}
