package testenv

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
)

// Update rewrites the golden files: go test ./plugin ./plugin/docker ./plugin/kubernetes -update.
var Update = flag.Bool("update", false, "rewrite the golden files")

// Golden compares got with testdata/golden/<name>, or rewrites it with -update.
func Golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join(Root(), "testdata", "golden", name)
	if *Update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./plugin ./plugin/docker ./plugin/kubernetes -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs (-want +got):\n%s", name, diff)
	}
}

// GoldenTime is the clock of the golden tests.
var GoldenTime = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// TestKey stands for the access key in goldens, which must hold "***".
const TestKey = "0a1b2c3d-placeholder-access-key"

// SpecConfig is the configuration of the defaults, the user alice with
// TestKey in us-west, and the non-empty settings of s.
func SpecConfig(t *testing.T, s plugin.Settings, p plugin.Pipeline) plugin.Config {
	t.Helper()
	base := plugin.DefaultSettings()
	base.Username, base.AccessKey, base.Region = "alice", TestKey, "us-west"
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
	var out plugin.Settings
	_ = json.Unmarshal(raw, &out)
	c, err := out.Config(p, "host", "r4nd")
	if err != nil {
		t.Fatal(err)
	}
	return c
}
