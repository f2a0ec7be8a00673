package docker

import (
	"testing"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

func TestUngraceful(t *testing.T) {
	running := engine.Container{ID: "sc", State: engine.State{Status: "running", Running: true}}
	crashed := engine.Container{ID: "sc", State: engine.State{Status: "exited", ExitCode: 1}}
	closed := engine.Container{ID: "sc", State: engine.State{Status: "exited"}}
	for _, tc := range []struct {
		name   string
		before engine.Container
		exit   int
		killed bool
		want   string
	}{
		{"drained and exited 0", running, 0, false, ""},
		{"killed at stop_timeout", running, 137, true, "sauce connect was killed when stop_timeout ran out"},
		{"exited non-zero on SIGTERM", running, 2, false, "sauce connect ended with exit code 2 on SIGTERM"},
		{"crashed before the stop", crashed, 1, false, "sauce connect had already ended with exit code 1"},
		{"ended by itself, gracefully", closed, 0, false, ""},
		{"gone before the stop", engine.Container{}, 0, false, ""},
	} {
		if got := ungracefulEnd(tc.before, tc.exit, tc.killed); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
