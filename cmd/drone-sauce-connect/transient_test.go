package main_test

import (
	"strings"
	"testing"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/internal/testenv"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
)

// TestTransientEngineErrors runs the plugin binary against the real engine
// through a proxy that fails chosen requests the way a loaded engine or a
// socket proxy does: 5xx answers, dropped connections, an answer lost after
// the engine acted on the request, a slow answer. Start and stop must ride
// them out, and leave nothing behind.
func TestTransientEngineErrors(t *testing.T) {
	skipShort(t)
	tunnel := "transient-" + testenv.Random(8)
	proxy := testenv.NewEngineProxy(t,
		&testenv.Fault{Method: "GET", Path: `^/containers/json$`, Times: 1, Drop: true},
		&testenv.Fault{Method: "POST", Path: `^/containers/create$`, Times: 1, Status: 503},
		// The engine creates the container, the answer is lost: the retry
		// meets a name conflict and must adopt the container it made.
		&testenv.Fault{Method: "POST", Path: `^/containers/create$`, Times: 1, Lose: true},
		&testenv.Fault{Method: "POST", Path: `^/containers/[^/]+/start$`, Times: 1, Status: 500},
		&testenv.Fault{Method: "POST", Path: `^/containers/[^/]+/start$`, Times: 1, Delay: 2 * time.Second},
		&testenv.Fault{Method: "GET", Path: `^/containers/[^/]+/json$`, Times: 2, Status: 503},
		&testenv.Fault{Method: "POST", Path: `^/containers/[^/]+/stop$`, Times: 1, Status: 500},
		&testenv.Fault{Method: "DELETE", Path: `^/containers/[^/]+$`, Times: 1, Status: 429},
	)
	t.Cleanup(func() { testenv.RemoveTunnel(eng, tunnel) })
	via := "DOCKER_HOST=unix://" + proxy.Socket

	start := startBinary(t, via, "PLUGIN_TUNNEL_NAME="+tunnel)
	if code := start.wait(t); code != 0 {
		t.Fatalf("start exited %d:\n%s", code, start.output())
	}
	if n := strings.Count(start.output(), "retrying in"); n < 5 {
		t.Errorf("%d retries said, want one per injected failure of the start:\n%s", n, start.output())
	}
	found, err := eng.ListContainers(t.Context(), map[string]string{plugin.LabelTunnel: tunnel})
	if err != nil || len(found) != 1 {
		t.Fatalf("%d containers of the tunnel (%v), want exactly 1: a lost create must be adopted, not doubled", len(found), err)
	}
	m := hostAPI.FindStringSubmatch(start.output())
	if m == nil {
		t.Fatalf("no host URL:\n%s", start.output())
	}
	if code := testenv.Get(t, m[1]+"/readyz"); code != 200 {
		t.Fatalf("a later host step gets %d", code)
	}

	stop := startBinary(t, via, "PLUGIN_TUNNEL_NAME="+tunnel, "PLUGIN_ACTION=stop")
	if code := stop.wait(t); code != 0 {
		t.Fatalf("stop exited %d:\n%s", code, stop.output())
	}
	if unused := proxy.Unused(); len(unused) > 0 {
		t.Errorf("faults never injected (the test proved less than it says): %v", unused)
	}
	testenv.AssertNoTunnel(t, eng, tunnel)
	t.Logf("start:\n%s\nstop:\n%s", start.output(), stop.output())
}
