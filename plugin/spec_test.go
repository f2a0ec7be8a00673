package plugin

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/kube"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// golden compares got with testdata/golden/<name>, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("..", "testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./plugin -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs (-want +got):\n%s", name, diff)
	}
}

// The access key below stands for the real one; the goldens must hold "***".
const testKey = "0a1b2c3d-placeholder-access-key"

func specConfig(t *testing.T, s Settings, p Pipeline) Config {
	t.Helper()
	base := DefaultSettings()
	base.Username, base.AccessKey, base.Region = "alice", testKey, "us-west"
	// Overlay the non-empty fields of s.
	merged, _ := json.Marshal(base)
	over, _ := json.Marshal(s)
	var m, o map[string]string
	_ = json.Unmarshal(merged, &m)
	_ = json.Unmarshal(over, &o)
	for k, v := range o {
		if v != "" {
			m[k] = v
		}
	}
	raw, _ := json.Marshal(m)
	var out Settings
	_ = json.Unmarshal(raw, &out)
	c, err := out.Config(p, "host", "r4nd")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestContainerSpecGolden(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	drone := Pipeline{Drone: "true", DroneRepo: "octo/app", DroneBuildNumber: "42", DroneStageName: "default"}
	droneNet := &engine.Container{
		ID: "0123456789ab0123456789ab0123456789ab0123456789ab0123456789abcdef", Image: "drone-sauce-connect/drone-sauce-connect:1",
		ImageID:     "sha256:d5c0d5c0d5c0d5c0d5c0d5c0d5c0d5c0d5c0d5c0d5c0d5c0d5c0d5c0d5c0d5c0",
		NetworkMode: "drone-abc", Networks: map[string]engine.Endpoint{"drone-abc": {IP: "172.18.0.2"}},
		Mounts: map[string]string{"/var/run/docker.sock": "/var/run/docker.sock", "/drone/src": "/var/lib/docker/volumes/v1/_data"},
		Labels: map[string]string{"io.drone": "true", "io.drone.expires": "1795874400", "io.drone.build.number": "42", "org.opencontainers.image.title": "not copied"},
	}
	for _, tc := range []struct {
		name  string
		s     Settings
		p     Pipeline
		owner *engine.Container
	}{
		{"host-defaults", Settings{}, Pipeline{}, nil},
		{"drone-network", Settings{}, drone, droneNet},
		{"all-options", Settings{
			TunnelName: "release-tunnel", TunnelPool: "true", Shared: "all", Proxy: "http://user:pw@proxy:3128", ProxySauce: "proxy:3128",
			ProxyLocalhost: "allow", TunnelDomains: "a.example,b.example", DenyDomains: "ads.example", TLSPassthroughDomains: "bank.example",
			LogLevel: "debug", SCArgs: "--log-http=api:url", Env: `{"SAUCE_DNS_SERVER":"1.1.1.1"}`, Labels: `{"team":"web"}`,
			Region: "eu", APIPort: "9000", APIHostPort: "0", Image: "mirror.example/sauce-connect:5.2", Network: "extra", Publish: "always",
		}, drone, droneNet},
		{"host-network", Settings{NetworkMode: "host"}, Pipeline{GitHubActions: "true", GitHubRepository: "o/r", GitHubRunID: "1", GitHubRunAttempt: "1", GitHubJob: "j"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := specConfig(t, tc.s, tc.p)
			pl := Place(c, tc.owner)
			pl.Deadline, pl.Labels = Deadline(c, tc.owner, now), PlatformLabels(tc.owner)
			spec := ContainerSpec(c, pl, now)
			if !hasSecret(spec, "SAUCE_ACCESS_KEY", testKey) {
				t.Fatalf("SC would not get the access key through its environment: %+v", spec.Env)
			}
			for _, a := range spec.Cmd {
				if strings.Contains(a, testKey) {
					t.Fatalf("access key in argv: %q", spec.Cmd)
				}
			}
			js, err := json.MarshalIndent(spec.Redacted(), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			trace := Trace(spec)
			if strings.Contains(string(js)+trace, testKey) || strings.Contains(trace, "user:pw") {
				t.Fatal("a secret reached the golden output")
			}
			golden(t, "spec-"+tc.name+".json", string(js)+"\n")
			golden(t, "trace-"+tc.name+".txt", trace+"\n")
			if tc.owner != nil {
				dog, ok := WatchdogSpec(c, *tc.owner, GuardOf(c, tc.owner, tc.owner, pl), "5c0ffee5c0ffee5c0ffee5c0ffee5c0ffee5c0ffee5c0ffee5c0ffee5c0ffee5", pl.Deadline, now, "unix:///var/run/docker.sock")
				if !ok {
					t.Fatal("no watchdog for a container with the socket mounted")
				}
				js, _ := json.MarshalIndent(dog, "", "  ")
				golden(t, "watchdog-"+tc.name+".json", string(js)+"\n")
			}
		})
	}
}

func hasSecret(s engine.ContainerSpec, name, value string) bool {
	for _, e := range s.Env {
		if e.Name == name {
			return e.Value == value && e.Secret
		}
	}
	return false
}

func TestKubernetesObjectsGolden(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	harness := Pipeline{Drone: "true", HarnessBuildID: "77", DroneRepo: "acme/shop", DroneStageName: "browser"}
	owner := kube.Pod{Metadata: kube.ObjectMeta{Name: "harnessci-browser-abc", Namespace: "ci", UID: "0f6c3b1e-uid"}}
	for _, tc := range []struct {
		name string
		s    Settings
	}{
		{"kubernetes-defaults", Settings{}},
		{"kubernetes-service", Settings{KubernetesService: "true", ImagePullSecret: "mirror-login", MemoryLimit: "1Gi", Pull: "always", SCArgs: "--log-http=api:url"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := specConfig(t, tc.s, harness)
			objs := KubernetesObjects(c, owner, now)
			if objs.Secret.StringData[secretAccessKey] != testKey {
				t.Fatal("the secret does not hold the access key")
			}
			objs.Secret.StringData[secretAccessKey] = "***"
			js, err := json.MarshalIndent(objs, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(js), testKey) {
				t.Fatal("the access key is outside the secret")
			}
			golden(t, tc.name+".json", string(js)+"\n")
		})
	}
}

// TestKubernetesSecretsByReference: secret values in env and sc_args reach
// the tunnel pod through its Secret, never in the pod spec.
func TestKubernetesSecretsByReference(t *testing.T) {
	c := specConfig(t, Settings{Env: `{"SAUCE_HEADER":"Authorization: Bearer tok3n"}`, SCArgs: `["--auth", "carol:authpass3@upstream:3128", "--log-http=api:url"]`}, Pipeline{})
	owner := kube.Pod{Metadata: kube.ObjectMeta{Name: "build", Namespace: "ci", UID: "uid"}}
	objs := KubernetesObjects(c, owner, time.Now())
	pod, err := json.Marshal(objs.Pod)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{testKey, "tok3n", "authpass3"} {
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
