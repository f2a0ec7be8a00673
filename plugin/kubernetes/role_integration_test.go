package kubernetes_test

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/drone-sauce-connect/drone-sauce-connect/internal/testenv"
)

// TestReadmeManifestsAsWritten applies testdata/kubernetes/role.yaml (the
// README's Role and RoleBinding) exactly as written, as `kubectl apply -n`
// would, and asks the API server's own authorizer whether the service
// account the README's Kubernetes pipelines run their build pods with may do
// every request the backend makes. Copying the README must work.
func TestReadmeManifestsAsWritten(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the test control plane")
	}
	t.Parallel()
	ctx := context.Background()
	ns := "t-" + testenv.Random(10)
	must(t, admin.Do(ctx, http.MethodPost, "/api/v1/namespaces", map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}}, nil))
	t.Cleanup(func() { _ = admin.Do(context.Background(), http.MethodDelete, "/api/v1/namespaces/"+ns, nil, nil) })
	must(t, testenv.ApplyRole(admin, ns))

	accounts := map[string]string{}
	for file, key := range map[string][]string{
		"drone-kubernetes.yml":          {"service_account_name"},
		"harness-kubernetes.yml":        {"pipeline", "stages", "stage", "spec", "infrastructure", "spec", "serviceAccountName"},
		"harness-kubernetes-in-pod.yml": {"pipeline", "stages", "stage", "spec", "infrastructure", "spec", "serviceAccountName"},
	} {
		accounts[file] = pipelineValue(t, file, key)
	}
	for _, sa := range accounts {
		user := "system:serviceaccount:" + ns + ":" + sa
		for _, r := range []struct{ verb, resource, sub string }{
			{"get", "pods", ""}, {"list", "pods", ""}, {"watch", "pods", ""}, {"create", "pods", ""}, {"delete", "pods", ""},
			{"get", "pods", "log"}, {"create", "secrets", ""}, {"get", "secrets", ""}, {"delete", "secrets", ""},
			{"create", "services", ""}, {"delete", "services", ""},
		} {
			allowed, reason, err := testenv.CanI(admin, ns, user, r.verb, r.resource, r.sub)
			must(t, err)
			if !allowed {
				t.Errorf("%s may not %s %s/%s with the README's manifests (%q): the pipelines' service account and the RoleBinding disagree",
					user, r.verb, r.resource, r.sub, reason)
			}
		}
	}
}

// pipelineValue reads a string at a path of keys (the first list element
// where a list is met) from a testdata/pipelines file.
func pipelineValue(t *testing.T, file string, path []string) string {
	b, err := os.ReadFile(filepath.Join(testenv.Root(), "testdata", "pipelines", file))
	must(t, err)
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var v any
		if dec.Decode(&v) != nil {
			t.Fatalf("%s: no %v", file, path)
		}
		for _, k := range path {
			if l, ok := v.([]any); ok && len(l) > 0 {
				v = l[0]
			}
			m, ok := v.(map[string]any)
			if !ok {
				v = nil
				break
			}
			v = m[k]
		}
		if s, ok := v.(string); ok {
			return s
		}
	}
}
