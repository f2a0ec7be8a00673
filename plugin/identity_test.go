package plugin

import (
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
