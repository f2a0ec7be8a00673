package main_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/internal/testenv"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

// TestEngineRestarts: the engine restarts under the plugin (SIGTERM, down
// a moment, started again on its data, as a host's dockerd or a dind
// service restarts; without live-restore it stops its containers, each
// with its StopTimeout): during the readiness wait, during action run, and
// while only the watchdog runs; then the stop step. An engine of the
// test's own: restarting the shared second engine would disturb its other
// tests. Nothing may be left, and each run says what happened.
func TestEngineRestarts(t *testing.T) {
	skipShort(t)
	d, err := testenv.StartDockerd(standin, pluginImage)
	if err != nil {
		testenv.Missing(t, "engine restarts: no second docker engine: "+err.Error())
	}
	t.Cleanup(d.Stop)
	e, err := engine.Connect(context.Background(), engine.Access{Host: d.Socket})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	on := "DOCKER_HOST=" + d.Socket
	restart := func(t *testing.T) {
		t.Helper()
		if err := d.Restart(time.Second); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("during the readiness wait", func(t *testing.T) {
		tunnel := "restart-wait-" + testenv.Random(6)
		t.Cleanup(func() { testenv.RemoveTunnel(e, tunnel) })
		p := startBinary(t, on, "PLUGIN_TUNNEL_NAME="+tunnel, `PLUGIN_ENV={"SAUCE_STANDIN_READY_DELAY":"4s"}`)
		p.waitFor(t, "+ docker run")
		awaitRunning(t, e, "sauce-connect-"+tunnel)
		restart(t)
		if code := p.wait(t); code != 0 || !strings.Contains(p.output(), "retrying") {
			t.Fatalf("the start, whose SC the restart stopped, exited %d without a retry:\n%s", code, p.output())
		}
		stopOn(t, on, tunnel)
		awaitGone(t, e, tunnel, cleanWithin)
	})
	t.Run("during action run", func(t *testing.T) {
		tunnel := "restart-run-" + testenv.Random(6)
		t.Cleanup(func() { testenv.RemoveTunnel(e, tunnel) })
		p := startBinary(t, on, "PLUGIN_TUNNEL_NAME="+tunnel, "PLUGIN_ACTION=run")
		p.waitFor(t, " is up in region ")
		restart(t)
		code := p.wait(t)
		if code != plugin.ExitFailure || !strings.Contains(p.output(), "while the tunnel was up") {
			t.Fatalf("run, whose SC the restart stopped, exited %d:\n%s", code, p.output())
		}
		awaitGone(t, e, tunnel, cleanWithin)
	})
	t.Run("while only the watchdog runs", func(t *testing.T) {
		tunnel := "restart-dog-" + testenv.Random(6)
		t.Cleanup(func() { testenv.RemoveTunnel(e, tunnel) })
		ran, err := testenv.RunContainer(context.Background(), e, engine.ContainerSpec{
			Name: "step-" + tunnel, Image: pluginImage, Env: pluginEnv("PLUGIN_TUNNEL_NAME", tunnel, "DRONE", "true", "DRONE_BUILD_NUMBER", "9"),
			Mounts: []engine.Mount{{Source: strings.TrimPrefix(d.Socket, "unix://"), Target: "/var/run/docker.sock"}},
		}, time.Minute, true)
		if err != nil || ran.ExitCode != 0 {
			t.Fatalf("the start step: %v, exit %d:\n%s", err, ran.ExitCode, ran.Logs)
		}
		t.Cleanup(func() { _ = e.RemoveContainer(context.Background(), ran.ID) })
		if sc, dogs := tunnelOn(t, e, tunnel); sc != 1 || dogs != 1 {
			t.Fatalf("%d SC and %d watchdogs running before the restart", sc, dogs)
		}
		restart(t)
		stop := stopOn(t, on, tunnel)
		if !strings.Contains(stop, "stopped and removed") {
			t.Errorf("the stop step after the restart:\n%s", stop)
		}
		awaitGone(t, e, tunnel, cleanWithin)
	})
}

// awaitRunning waits until the named container runs on e.
func awaitRunning(t *testing.T, e *engine.Engine, name string) {
	t.Helper()
	for began := time.Now(); time.Since(began) < 30*time.Second; time.Sleep(50 * time.Millisecond) {
		if c, err := e.InspectContainer(context.Background(), name); err == nil && c.State.Running {
			return
		}
	}
	t.Fatalf("%s did not run", name)
}

// stopOn runs the stop step for tunnel against the engine on reaches, and
// requires exit 0.
func stopOn(t *testing.T, on, tunnel string) string {
	t.Helper()
	stop := startBinary(t, on, "PLUGIN_TUNNEL_NAME="+tunnel, "PLUGIN_ACTION=stop")
	if code := stop.wait(t); code != 0 {
		t.Fatalf("stop exited %d:\n%s", code, stop.output())
	}
	return stop.output()
}

// tunnelOn counts the tunnel's running SC and watchdog containers on e.
func tunnelOn(t *testing.T, e *engine.Engine, tunnel string) (sc, dogs int) {
	t.Helper()
	cs, err := e.ListContainers(context.Background(), map[string]string{plugin.LabelTunnel: tunnel})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.State != "running" {
			continue
		}
		if c.Labels[plugin.LabelRole] == plugin.RoleWatchdog {
			dogs++
		} else {
			sc++
		}
	}
	return sc, dogs
}
