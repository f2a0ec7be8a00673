package docker

import (
	"context"
	"errors"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/internal/testenv"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

func TestStartStatusStopOnTheSimulatedEngine(t *testing.T) {
	e := newSim(t)
	b, out := simBackend(t, e, "sim-one", nil)
	tun, err := start(b)
	if err != nil {
		t.Fatalf("start: %v\n%s", err, out)
	}
	if sc := e.running(plugin.RoleTunnel); len(sc) != 1 || sc[0].id != tun.ID {
		t.Fatalf("running SC containers %v, tunnel %s", sc, tun.ID)
	}
	if !strings.HasPrefix(tun.Endpoints.Probe, "http://127.0.0.1:") || tun.Reused {
		t.Errorf("tunnel %+v: want a new tunnel probed on the published host port", tun)
	}
	// One start lists the engine's containers once.
	if n := e.Calls()["list"]; n != 1 {
		t.Errorf("a start listed the containers %d times, want 1", n)
	}
	if !strings.Contains(out.String(), "+ docker run -d --name") {
		t.Errorf("no trace of the container in:\n%s", out)
	}
	if err := b.Status(context.Background()); err != nil {
		t.Errorf("status of a ready tunnel: %v", err)
	}
	if err := b.Stop(context.Background()); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if left := e.all(); len(left) != 0 {
		t.Errorf("stop left %d containers", len(left))
	}
	testenv.CheckStopped(t, b, out)
}

func TestASecondStartReusesTheTunnel(t *testing.T) {
	e := newSim(t)
	a, _ := simBackend(t, e, "sim-reuse", nil)
	first, err := start(a)
	if err != nil {
		t.Fatal(err)
	}
	b, out := simBackend(t, e, "sim-reuse", nil)
	second, err := start(b)
	if err != nil {
		t.Fatalf("second start: %v\n%s", err, out)
	}
	if !second.Reused || second.ID != first.ID || e.Calls()["create"] != 1 {
		t.Errorf("second start %+v, creates %d: want the first tunnel reused", second, e.Calls()["create"])
	}
}

// Two starts of one tunnel at once on one engine: one creates SC's
// container, the other finds the name taken (a conflict, as the engine
// answers) and joins that tunnel instead of failing or starting a second.
func TestTwoStartsOfOneTunnelShareIt(t *testing.T) {
	e := newSim(t)
	gate := make(chan struct{})
	var arrived sync.WaitGroup
	arrived.Add(2)
	e.beforeCreate = func(string) { arrived.Done(); <-gate }
	var wg sync.WaitGroup
	tunnels := make([]*plugin.Tunnel, 2)
	errs := make([]error, 2)
	for i := range tunnels {
		b, _ := simBackend(t, e, "sim-race", nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			tunnels[i], errs[i] = start(b)
		}()
	}
	arrived.Wait() // both listed the engine and found no tunnel
	close(gate)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("start %d: %v", i, err)
		}
	}
	if tunnels[0].ID != tunnels[1].ID || tunnels[0].Reused == tunnels[1].Reused {
		t.Errorf("tunnels %+v and %+v: want one tunnel, created by one start and joined by the other", tunnels[0], tunnels[1])
	}
	if n := len(e.all()); n != 1 {
		t.Errorf("%d containers after the race, want 1", n)
	}
}

func TestSCThatExitsIsExplainedAndRemoved(t *testing.T) {
	e := newSim(t)
	e.sc = func(c *simContainer) {
		c.log("ERROR: the access key is not valid for user u (401 Unauthorized)")
		c.exit(1)
	}
	b, out := simBackend(t, e, "sim-exit", nil)
	_, err := start(b)
	var ex *plugin.ExitedError
	if !errors.As(err, &ex) {
		t.Fatalf("start: %v, want an ExitedError\n%s", err, out)
	}
	if !strings.Contains(out.String(), "not valid for user") {
		t.Errorf("SC's log not shown:\n%s", out)
	}
	if left := e.all(); len(left) != 0 {
		t.Errorf("a failed start left %d containers", len(left))
	}
}

func TestSCNeverReadyTimesOutAndIsRemoved(t *testing.T) {
	e := newSim(t)
	e.sc = func(*simContainer) {}
	b, out := simBackend(t, e, "sim-never", func(s *plugin.Settings) { s.ReadyTimeout = "1s" })
	_, err := start(b)
	var to *plugin.TimeoutError
	if !errors.As(err, &to) {
		t.Fatalf("start: %v, want a TimeoutError\n%s", err, out)
	}
	if left := e.all(); len(left) != 0 {
		t.Errorf("a timed-out start left %d containers", len(left))
	}
}

func TestPullAlwaysPulls(t *testing.T) {
	e := newSim(t)
	e.noImage = true
	b, out := simBackend(t, e, "sim-pull", func(s *plugin.Settings) { s.Pull = "always" })
	if _, err := start(b); err != nil {
		t.Fatalf("start: %v\n%s", err, out)
	}
	if e.Calls()["pull"] != 1 {
		t.Errorf("pulls %d, want 1", e.Calls()["pull"])
	}
	n, _ := simBackend(t, newSim(t), "sim-never-pull", func(s *plugin.Settings) { s.Pull = "never" })
	n.eng.(*simEngine).noImage = true
	if _, err := start(n); err == nil || !strings.Contains(err.Error(), "pull") {
		t.Errorf("pull never, image missing: %v", err)
	}
}

func TestRunModeStopsOnCancelAndFailsWhenSCDies(t *testing.T) {
	e := newSim(t)
	b, out := simBackend(t, e, "sim-run", nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	waitFor(t, func() bool {
		return len(e.running(plugin.RoleTunnel)) == 1 && strings.Contains(out.String(), "tunnel sim-run is up")
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run, cancelled: %v\n%s", err, out)
	}
	if left := e.all(); len(left) != 0 {
		t.Errorf("run left %d containers", len(left))
	}

	b, out = simBackend(t, e, "sim-run-dies", nil)
	go func() { done <- b.Run(context.Background()) }()
	waitFor(t, func() bool {
		return len(e.running(plugin.RoleTunnel)) == 1 && strings.Contains(out.String(), "is up")
	})
	e.running(plugin.RoleTunnel)[0].exit(3)
	if err := <-done; err == nil || !strings.Contains(err.Error(), "exited with code 3") {
		t.Errorf("run, SC died: %v", err)
	}
	if left := e.all(); len(left) != 0 {
		t.Errorf("run left %d containers after SC died", len(left))
	}
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 10 s")
}

// The plugin in a pipeline step's container (Harness Cloud's Plugin step:
// host network mode, the socket mounted), proven by its marker: its
// watchdog is anchored on the step, and when the step is removed the
// watchdog stops SC gracefully and removes it.
func TestWatchdogEndsTheTunnelWhenItsStepIsRemoved(t *testing.T) {
	e := newSim(t)
	const marker = "/.drone-sauce-connect-self-test"
	step := e.add(engine.ContainerSpec{Name: "step-plugin", Image: "plugin:dev", NetworkMode: "host",
		Mounts: []engine.Mount{{Source: "/run/docker.sock", Target: "/var/run/docker.sock"}}, Files: []engine.File{{Path: marker}}})
	b, out := simBackend(t, e, "sim-dog", nil)
	b.here = func() procSelf {
		return procSelf{hostname: step.id[:12], marker: func() (string, func()) { return marker, func() {} }}
	}
	tun, err := start(b)
	if err != nil {
		t.Fatalf("start: %v\n%s", err, out)
	}
	dogs := e.running(plugin.RoleWatchdog)
	if len(dogs) != 1 {
		t.Fatalf("%d watchdogs running, want 1\n%s", len(dogs), out)
	}
	args, err := ParseWatchdogArgs(dogs[0].spec.Cmd[1:])
	if err != nil || args.Anchor != step.id || args.Target != tun.ID {
		t.Fatalf("watchdog args %+v (%v): want anchored on the step, guarding %s", args, err, tun.ID)
	}
	reaped := make(chan error, 1)
	go func() { reaped <- Reap(context.Background(), args, e, b.log.Logger, plugin.NewMasker()) }()
	if err := e.RemoveContainer(context.Background(), step.id); err != nil {
		t.Fatal(err)
	}
	if err := <-reaped; err != nil {
		t.Fatalf("reap: %v", err)
	}
	if sc := e.running(plugin.RoleTunnel); len(sc) != 0 {
		t.Errorf("SC still runs after its step was removed")
	}
	if !regexp.MustCompile(`its pipeline step (was removed|is gone): stopping tunnel sim-dog`).MatchString(out.String()) {
		t.Errorf("the watchdog did not say why it stopped the tunnel:\n%s", out)
	}
}

// A watchdog whose deadline has passed ends the tunnel (max_lifetime).
func TestWatchdogEndsTheTunnelAtItsDeadline(t *testing.T) {
	e := newSim(t)
	b, out := simBackend(t, e, "sim-deadline", nil)
	tun, err := start(b)
	if err != nil {
		t.Fatal(err)
	}
	args := WatchdogArgs{Tunnel: "sim-deadline", Target: tun.ID, Deadline: time.Now().Add(200 * time.Millisecond), StopTimeout: time.Second}
	if err := Reap(context.Background(), args, e, b.log.Logger, plugin.NewMasker()); err != nil {
		t.Fatal(err)
	}
	if len(e.all()) != 0 || !strings.Contains(out.String(), "max_lifetime reached") {
		t.Errorf("containers left %d; log:\n%s", len(e.all()), out)
	}
	// SC removed by someone else: the watchdog ends quietly.
	tun, err = start(b)
	if err != nil {
		t.Fatal(err)
	}
	args.Target, args.Deadline = tun.ID, time.Now().Add(time.Hour)
	go func() { _ = e.RemoveContainer(context.Background(), tun.ID) }()
	if err := Reap(context.Background(), args, e, b.log.Logger, plugin.NewMasker()); err != nil {
		t.Fatal(err)
	}
}

// A start while another start's SC is still getting ready joins that
// tunnel: it waits for it rather than starting a second.
func TestAStartJoinsATunnelStillGettingReady(t *testing.T) {
	e := newSim(t)
	release := make(chan struct{})
	e.sc = func(c *simContainer) { <-release; c.becomeReady() }
	first, _ := simBackend(t, e, "sim-join", nil)
	done := make(chan error, 1)
	go func() { _, err := start(first); done <- err }()
	waitFor(t, func() bool { return len(e.running(plugin.RoleTunnel)) == 1 })
	second, out := simBackend(t, e, "sim-join", nil)
	joined := make(chan *plugin.Tunnel, 1)
	go func() {
		t, err := start(second)
		if err != nil {
			out.Write([]byte("second start: " + err.Error()))
		}
		joined <- t
	}()
	time.Sleep(100 * time.Millisecond)
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if tun := <-joined; tun == nil || !tun.Reused || e.Calls()["create"] != 1 {
		t.Errorf("second start %+v with %d creates: want it to join the first\n%s", tun, e.Calls()["create"], out)
	}
}

func TestStopSavesTheLogToLogsFile(t *testing.T) {
	e := newSim(t)
	path := t.TempDir() + "/sc.log"
	b, out := simBackend(t, e, "sim-logs", func(s *plugin.Settings) { s.LogsFile = path })
	if _, err := start(b); err != nil {
		t.Fatal(err)
	}
	if err := b.Stop(context.Background()); err != nil {
		t.Fatalf("stop: %v\n%s", err, out)
	}
	saved, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(saved), "Sauce Connect is up") {
		t.Errorf("logs_file %q (%v)", saved, err)
	}
}
