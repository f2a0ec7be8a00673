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
	base := Settings{Action: "start", Username: "alice", AccessKey: testKey, Region: "us-west", Image: "saucelabs/sauce-connect:5",
		Pull: "if-not-exists", APIPort: "8032", APIHostPort: "8032", APIBind: "127.0.0.1", Publish: "auto", NetworkAlias: "sauce-connect",
		ReadyTimeout: "3m", StopTimeout: "30s", Retries: "3", TunnelPool: "false", Debug: "false", LogLevel: "info", LogFormat: "text"}
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
	droneNet := &engine.Container{NetworkMode: "drone-abc", Networks: map[string]engine.Endpoint{"drone-abc": {IP: "172.18.0.2"}}}
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
			spec := ContainerSpec(c, Place(c, tc.owner), now)
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
