package plugin

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWriteOutputsToEveryPlatformFile(t *testing.T) {
	dir := t.TempDir()
	path := func(n string) string { return filepath.Join(dir, n) }
	// An existing line must survive: the files are appended to.
	if err := os.WriteFile(path("drone-output"), []byte("EARLIER=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := Config{Region: "eu-central", AccessKey: "never-written", Pipeline: Pipeline{
		DroneOutput: path("drone-output"), GitHubOutput: path("gh-output"), GitHubState: path("gh-state"),
		GitHubStepSummary: path("summary"), DroneCardPath: path("card.json"),
	}}
	tun := &Tunnel{ID: "0123456789abcdef", Name: "t1", ReadyIn: 1234 * time.Millisecond,
		Endpoints: Endpoints{Container: "http://sauce-connect:8032", Host: "http://127.0.0.1:8032"}}
	if err := writeOutputs(c, tun, nil); len(err) > 0 {
		t.Fatal(err)
	}
	want := map[string]string{
		"drone-output": "EARLIER=1\nSAUCE_TUNNEL_NAME=t1\nSAUCE_CONNECT_API=http://sauce-connect:8032\nSAUCE_CONNECT_HOST_API=http://127.0.0.1:8032\nSAUCE_CONNECT_CONTAINER=0123456789abcdef\nSAUCE_REGION=eu-central\n",
		"gh-output":    "tunnel_name=t1\napi_url=http://sauce-connect:8032\nhost_api_url=http://127.0.0.1:8032\ncontainer_id=0123456789abcdef\nregion=eu-central\n",
		"gh-state":     "TUNNEL_NAME=t1\nCONTAINER_ID=0123456789abcdef\n",
	}
	for f, w := range want {
		if b, _ := os.ReadFile(path(f)); string(b) != w {
			t.Errorf("%s:\n%s\nwant\n%s", f, b, w)
		}
	}
	summary, _ := os.ReadFile(path("summary"))
	if !strings.Contains(string(summary), "| Tunnel | `t1` |") || !strings.Contains(string(summary), "| Time to ready | 1.23 s |") {
		t.Errorf("summary:\n%s", summary)
	}
	var card struct {
		Schema string            `json:"schema"`
		Data   map[string]string `json:"data"`
	}
	b, _ := os.ReadFile(path("card.json"))
	if err := json.Unmarshal(b, &card); err != nil || card.Data["tunnel"] != "t1" || card.Data["api"] != "http://sauce-connect:8032" {
		t.Errorf("card: %s (%v)", b, err)
	}
	for f := range want {
		if b, _ := os.ReadFile(path(f)); strings.Contains(string(b), "never-written") {
			t.Errorf("%s holds the access key", f)
		}
	}
}

func TestDroneCardOnStdoutIsTheRunnerEscape(t *testing.T) {
	var out strings.Builder
	c := Config{Region: "us-west", Pipeline: Pipeline{DroneCardPath: "/dev/stdout"}}
	if err := writeOutputs(c, &Tunnel{ID: "abc", Name: "t"}, &out); len(err) > 0 {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "\x1b]1338;") || !strings.HasSuffix(out.String(), "\x1b]0m\n") {
		t.Errorf("card on stdout: %q", out.String())
	}
}
