package kubernetes

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/drone-sauce-connect/drone-sauce-connect/internal/testenv"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/kubeapi"
)

func TestKubernetesObjectsGolden(t *testing.T) {
	now := testenv.GoldenTime
	// The build pod of a Harness stage on Kubernetes owns the objects.
	owner := kubeapi.Pod{Metadata: kubeapi.ObjectMeta{Name: "harnessci-browser-abc", Namespace: "ci", UID: "0f6c3b1e-uid"}}
	harness := func(s plugin.Settings) plugin.Config {
		return testenv.SpecConfig(t, s, plugin.Pipeline{Drone: "true", HarnessBuildID: "77", DroneRepo: "acme/shop", DroneStageName: "browser"})
	}
	for _, tc := range []struct {
		name string
		s    plugin.Settings
	}{
		{"kubernetes-defaults", plugin.Settings{}},
		{"kubernetes-service", plugin.Settings{KubernetesService: "true", ImagePullSecret: "mirror-login", MemoryLimit: "1Gi", Pull: "always", SCArgs: "--log-http=api:url",
			NodeSelector: `{"pool":"ci"}`, Tolerations: `[{"key":"ci","operator":"Exists","effect":"NoExecute","tolerationSeconds":60}]`, ServiceAccount: "sauce-connect",
			RunAsUser: "65532"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := harness(tc.s)
			objs := objects(c, owner, now)
			if objs.Secret.StringData[secretAccessKey] != testenv.TestKey {
				t.Fatal("the secret does not hold the access key")
			}
			objs.Secret.StringData[secretAccessKey] = "***"
			js, err := json.MarshalIndent(objs, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(js), testenv.TestKey) {
				t.Fatal("the access key is outside the secret")
			}
			testenv.Golden(t, tc.name+".json", string(js)+"\n")
		})
	}
}

// TestKubernetesSecretsByReference: secret values in env and sc_args reach
// the tunnel pod through its Secret, never in the pod spec.
func TestKubernetesSecretsByReference(t *testing.T) {
	c := testenv.SpecConfig(t, plugin.Settings{Env: `{"SAUCE_HEADER":"Authorization: Bearer tok3n"}`, SCArgs: `["--auth", "carol:authpass3@upstream:3128", "--log-http=api:url"]`}, plugin.Pipeline{})
	owner := kubeapi.Pod{Metadata: kubeapi.ObjectMeta{Name: "build", Namespace: "ci", UID: "uid"}}
	objs := objects(c, owner, time.Now())
	pod, err := json.Marshal(objs.Pod)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{testenv.TestKey, "tok3n", "authpass3"} {
		if strings.Contains(string(pod), secret) {
			t.Errorf("%s is in the pod spec:\n%s", secret, pod)
		}
	}
	args := objs.Pod.Spec.Containers[0].Args
	if want := []string{"run", "--auth", "$(DSC_SECRET_ARG_2)", "--log-http=api:url"}; !cmp.Equal(args, want) {
		t.Errorf("args %q, want %q", args, want)
	}
	if objs.Secret.StringData["DSC_SECRET_ARG_2"] != "carol:authpass3@upstream:3128" || objs.Secret.StringData["SAUCE_HEADER"] != "Authorization: Bearer tok3n" {
		t.Errorf("the Secret lacks the values: %v", objs.Secret.StringData)
	}
}
