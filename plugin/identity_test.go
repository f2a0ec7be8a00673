package plugin

import (
	"io"
	"os"
	"strings"
	"testing"
)

func TestTunnelNameFromPipeline(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    Pipeline
		want string
	}{
		{"drone", Pipeline{Drone: "true", DroneRepo: "octocat/hello-world", DroneBuildNumber: "42", DroneStageName: "default"}, "octocat-hello-world-42-default"},
		{"harness", Pipeline{Drone: "true", HarnessBuildID: "9", HarnessPipelineID: "e2e", DroneRepo: "acme/shop", DroneStageName: "Browser Tests"}, "acme-shop-e2e-9-Browser-Tests"},
		{"harness stage matrix", Pipeline{Drone: "true", HarnessBuildID: "9", HarnessPipelineID: "e2e", DroneRepo: "acme/shop", DroneStageName: "Browser Tests", HarnessStageIndex: "2"}, "acme-shop-e2e-9-Browser-Tests-s2"},
		{"harness step matrix", Pipeline{Drone: "true", HarnessBuildID: "9", HarnessPipelineID: "e2e", DroneRepo: "acme/shop", DroneStageName: "t", HarnessStageIndex: "0", HarnessStepIndex: "3"}, "acme-shop-e2e-9-t-s0-i3"},
		{"github", Pipeline{GitHubActions: "true", GitHubRepository: "acme/web", GitHubRunID: "123456", GitHubRunAttempt: "2", GitHubJob: "test"}, "acme-web-123456-2-test"},
		{"github post step", Pipeline{GitHubActions: "true", GitHubRepository: "acme/web", GitHubRunID: "1", GitHubJob: "t", StateTunnelName: "saved-name"}, "saved-name"},
		{"local", Pipeline{}, "buildhost-0badcafe"},
		{"injection", Pipeline{Drone: "true", DroneRepo: "a/b; rm -rf /", DroneBuildNumber: "1", DroneStageName: "$(x)"}, "a-b-rm-rf-1-x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := DefaultSettings()
			s.Action = "stop"
			c, err := s.Config(tc.p, "buildhost", "0badcafe")
			if err != nil {
				t.Fatal(err)
			}
			if c.TunnelName != tc.want {
				t.Errorf("tunnel name %q, want %q", c.TunnelName, tc.want)
			}
		})
	}
}

// TestMatrixLegsNeverShareAName: the legs of a GitHub matrix share every
// variable GitHub sets, so each start adds a part of its own; the post
// step (STATE_TUNNEL_NAME) and the job's later steps (SAUCE_TUNNEL_NAME,
// which the start writes to GITHUB_ENV) name the same tunnel as their
// start; a stop with nothing handed on adds nothing.
func TestMatrixLegsNeverShareAName(t *testing.T) {
	files := t.TempDir()
	leg := Pipeline{GitHubActions: "true", GitHubRepository: "o/r", GitHubRunID: "1", GitHubRunAttempt: "1", GitHubJob: "browser-tests",
		GitHubEnv: files + "/env", GitHubState: files + "/state"}
	name := func(p Pipeline, action, random string) string {
		s := DefaultSettings()
		s.Action, s.Username, s.AccessKey, s.Region = action, "u", "k", "us-west"
		c, err := s.Config(p, "host", random)
		if err != nil {
			t.Fatal(err)
		}
		return c.TunnelName
	}
	a, b := name(leg, "start", "1a2b3c4d"), name(leg, "start", "5e6f7a8b")
	if a == b || a != "o-r-1-1-browser-tests-1a2b3c4d" {
		t.Errorf("two legs: %q and %q", a, b)
	}
	post := leg
	post.StateTunnelName, post.PostStep = a, true
	if got := name(post, "start", "ffffffff"); got != a {
		t.Errorf("the post step names %q, its start %q", got, a)
	}
	t.Setenv("SAUCE_TUNNEL_NAME", b)
	s, err := LoadSettings()
	if err != nil {
		t.Fatal(err)
	}
	if s.TunnelName != b {
		t.Errorf("a later step reads %q from SAUCE_TUNNEL_NAME, want %q", s.TunnelName, b)
	}
	t.Setenv("SAUCE_TUNNEL_NAME", "")
	if got := name(leg, "stop", "ffffffff"); got != "o-r-1-1-browser-tests" {
		t.Errorf("a stop with nothing handed on: %q", got)
	}
	unseen := leg
	unseen.GitHubState = "/home/runner/work/_temp/_runner_file_commands/save_state_1"
	if got := name(unseen, "start", "1a2b3c4d"); got != "o-r-1-1-browser-tests" {
		t.Errorf("a start that can hand nothing on (act's self-hosted mode): %q", got)
	}
}

// TestStartHandsTheNameOn: on GitHub the start writes the name to
// GITHUB_ENV (later steps), GITHUB_STATE (the post step) and the outputs,
// with the tunnel's Sauce Labs ID.
func TestStartHandsTheNameOn(t *testing.T) {
	dir := t.TempDir()
	p := Pipeline{GitHubActions: "true", GitHubEnv: dir + "/env", GitHubState: dir + "/state", GitHubOutput: dir + "/out"}
	errs := writeOutputs(Config{Pipeline: p}, &Tunnel{Name: "o-r-1-1-j-1a2b3c4d", SauceID: "t-77", ID: "c0ffee"}, io.Discard)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	for file, want := range map[string]string{"env": "SAUCE_TUNNEL_NAME=o-r-1-1-j-1a2b3c4d\n", "state": "TUNNEL_NAME=o-r-1-1-j-1a2b3c4d\n", "out": "tunnel_id=t-77\n"} {
		b, _ := os.ReadFile(dir + "/" + file)
		if !strings.Contains(string(b), want) {
			t.Errorf("%s: %q, want %q in it", file, b, want)
		}
	}
}

func TestTwoBuildsNeverShareAName(t *testing.T) {
	a := Pipeline{Drone: "true", DroneRepo: "o/r", DroneBuildNumber: "1", DroneStageName: "s"}
	b := a
	b.DroneBuildNumber = "11"
	if a.ID() == b.ID() {
		t.Errorf("builds 1 and 11 share %q", a.ID())
	}
}

func TestSanitizeLongNamesStayDistinct(t *testing.T) {
	long := strings.Repeat("x", 200)
	a, b := sanitizeName(long+"a", 80), sanitizeName(long+"b", 80)
	if len(a) > 80 || len(b) > 80 || a == b {
		t.Errorf("long names: %q (%d) and %q (%d)", a, len(a), b, len(b))
	}
}
