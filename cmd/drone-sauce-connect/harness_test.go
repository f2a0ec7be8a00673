package main_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/internal/testenv"
)

// These tests run Harness CI stages with lite-engine (harness/lite-engine,
// the 2022-02 module the proxy serves), the engine that runs every step on
// Harness Cloud and on Harness VM pools, driven over its API as Harness's
// manager drives it: /setup/, then /start_step/ and /poll_step/ for each
// step, /destroy/ when the stage ends. What lite-engine does, read in its
// source: a step's container is named after the step's ID, joins the stage
// network with the step's identifier as its alias, and gets the Docker
// socket and the shared folder /tmp/engine mounted; a step without an
// image runs on the VM itself; a Background step is detached, its poll
// answers at once; containers stay until /destroy/, which SIGKILLs and
// removes every one of them, then removes the network once, ignoring every
// error. Two parts stay simulated, since neither can run here: Harness's
// manager (which turns the stage's YAML into these requests and resolves
// <+…> expressions; the test sends the requests its README pipeline
// becomes), and output variables of Plugin steps: the 2022 engine returns
// outputs only for a Run step's output_vars and gives a Plugin step no
// DRONE_OUTPUT; current ones set DRONE_OUTPUT to a file in the shared folder
// and return its KEY=VALUE lines from /poll_step/, which harnessStage.outputs
// does in their place.

// harnessStage is one stage on its own lite-engine, as on its own VM.
type harnessStage struct {
	t          *testing.T
	le         *testenv.LiteEngine
	id         string // the stage's execution; every step ID begins with it
	net        string
	tunnel     string // the tunnel's default name for this stage
	envs       map[string]string
	destroyed  bool
	killed     bool // lite-engine was killed: the test removes what it left
	stepIDs    []string
	background sync.WaitGroup
}

// newHarnessStage starts lite-engine and sets up a stage with the
// variables Harness gives every step.
func newHarnessStage(t *testing.T) *harnessStage {
	t.Helper()
	bin := testenv.Runner(t, "lite-engine")
	le, err := testenv.StartLiteEngine(bin)
	if err != nil {
		t.Fatalf("start lite-engine: %v", err)
	}
	s := &harnessStage{t: t, le: le, id: "h" + testenv.Random(10)}
	pipeline, build := "browser_tests_"+s.id, fmt.Sprint(len(t.Name())+7)
	s.net, s.tunnel = "harness-"+s.id, pipeline+"-"+build+"-browser_tests"
	s.envs = map[string]string{
		"CI": "true", "HARNESS_ACCOUNT_ID": "acct0", "HARNESS_ORG_ID": "default", "HARNESS_PROJECT_ID": "default",
		"HARNESS_PIPELINE_ID": pipeline, "HARNESS_BUILD_ID": build, "HARNESS_STAGE_ID": "browser_tests",
		"HARNESS_EXECUTION_ID": s.id, "DRONE_BUILD_NUMBER": build,
	}
	t.Cleanup(s.cleanup)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := le.Setup(ctx, testenv.LiteSetup{Envs: s.envs, Network: testenv.LiteNetwork{ID: s.net, Labels: testenv.Labels}}); err != nil {
		t.Fatalf("setup: %v", err)
	}
	return s
}

// plugin is a Plugin step: the plugin image, its settings as PLUGIN_*
// (the access key's value resolved from a secret, as the manager resolves
// <+secrets.getValue()>), the stand-in for SC, and DRONE_OUTPUT.
func (s *harnessStage) plugin(id string, settings ...string) testenv.LiteStep {
	env := map[string]string{"DRONE_OUTPUT": s.outputFile(id)}
	for _, e := range pluginEnv(append([]string{"PLUGIN_API_HOST_PORT", "0"}, settings...)...) {
		env[e.Name] = e.Value
	}
	return s.step(id, testenv.LiteStep{Image: pluginImage, Pull: "never", Envs: env})
}

// run is a Run step: in the image's container on the stage network, or
// on the VM itself when image is "". Its shell is busybox's.
func (s *harnessStage) run(id, image, script string, env map[string]string) testenv.LiteStep {
	shell := []string{"sh", "-c"}
	if image == "" {
		shell = []string{testenv.BusyboxPath, "sh", "-c"}
	}
	return s.step(id, testenv.LiteStep{Image: image, Pull: "never", Envs: env,
		Run: testenv.LiteRun{Entrypoint: shell, Commands: []string{script}}})
}

func (s *harnessStage) step(id string, st testenv.LiteStep) testenv.LiteStep {
	st.ID, st.Name, st.Kind, st.LogKey, st.Timeout = s.id+"-"+id, id, "Run", s.id+"-"+id+".log", 120
	st.Labels = maps.Clone(testenv.Labels)
	st.Labels[labelStage] = s.id
	if st.Envs == nil {
		st.Envs = map[string]string{} // lite-engine needs one
	}
	return st
}

// labelStage marks the step containers of one stage, for its cleanup.
const labelStage = "io.drone-sauce-connect.test.stage"

func (s *harnessStage) outputFile(id string) string {
	return filepath.Join(testenv.LiteShared, s.id+"-"+id+"-output.env")
}

// start begins a step; exec runs it to its end and requires exit 0.
func (s *harnessStage) start(st testenv.LiteStep) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s.stepIDs = append(s.stepIDs, st.ID)
	if err := s.le.StartStep(ctx, st); err != nil {
		s.t.Fatalf("start step %s: %v", st.Name, err)
	}
}

func (s *harnessStage) exec(st testenv.LiteStep) testenv.LitePolled {
	s.t.Helper()
	s.start(st)
	p := s.poll(st.ID)
	if p.ExitCode != 0 || p.Error != "" {
		s.t.Fatalf("step %s: exit %d %s\n%s", st.Name, p.ExitCode, p.Error, s.log(st.ID))
	}
	return p
}

func (s *harnessStage) poll(id string) testenv.LitePolled {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	p, err := s.le.PollStep(ctx, id)
	if err != nil {
		s.t.Fatalf("poll step %s: %v\n%s", id, err, s.log(id))
	}
	return p
}

// tests runs the stage's Run step "tests" (see run) to its end and requires
// its log to show want: that it reached the tunnel.
func (s *harnessStage) tests(image, script string, env map[string]string, want string) {
	s.t.Helper()
	s.exec(s.run("tests", image, script, env))
	if log := s.log(s.id + "-tests"); !strings.Contains(log, want) {
		s.t.Errorf("the Run step did not reach the tunnel (no %q in its log):\n%s", want, log)
	}
}

// log is a step's log as lite-engine keeps it.
func (s *harnessStage) log(stepID string) string {
	text, err := testenv.StepLog(stepID + ".log")
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return text
}

// outputs are a Plugin step's output variables: what /poll_step/ returned,
// else the DRONE_OUTPUT lines current lite-engines return (see above).
func (s *harnessStage) outputs(id string, polled testenv.LitePolled) map[string]string {
	s.t.Helper()
	if len(polled.Outputs) > 0 {
		return polled.Outputs
	}
	return readKV(s.t, s.outputFile(id))
}

// destroy ends the stage and returns how long after it the tunnel's last
// container was gone.
func (s *harnessStage) destroy(limit time.Duration) time.Duration {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	began := time.Now()
	s.destroyed = true
	if err := s.le.Destroy(ctx); err != nil {
		s.t.Fatalf("destroy: %v", err)
	}
	return time.Since(began) + awaitGone(s.t, eng, s.tunnel, limit)
}

// cleanup destroys the stage if the test did not, removes what a failed
// test left, the stage's files in the shared folder, and stops lite-engine;
// the access key must be in no step log and nowhere in lite-engine's own
// log (which repeats every line of every step).
func (s *harnessStage) cleanup() {
	if !s.destroyed {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_ = s.le.Destroy(ctx)
		cancel()
	}
	s.background.Wait()
	for _, id := range s.stepIDs {
		text, err := testenv.StepLog(id + ".log")
		if err != nil && !s.killed {
			s.t.Errorf("step %s has no log: %v", id, err)
		}
		noKey(s.t, "the log of step "+id, text)
	}
	noKey(s.t, "lite-engine's log", s.le.Log())
	s.le.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	left, _ := eng.ListContainers(ctx, map[string]string{labelStage: s.id})
	for _, c := range left {
		_ = eng.RemoveContainer(ctx, c.ID)
	}
	testenv.AssertNoTunnel(s.t, eng, s.tunnel)
	if _, err := eng.InspectNetwork(ctx, s.net); err == nil {
		_ = eng.RemoveNetwork(ctx, s.net)
		if !s.killed && !s.t.Failed() {
			s.t.Errorf("the stage network %s was left", s.net)
		}
	}
	files, _ := filepath.Glob(filepath.Join(testenv.LiteShared, s.id+"-*"))
	for _, f := range files {
		_ = os.Remove(f)
	}
}

// TestHarnessPluginStep runs the README's Harness Cloud stage
// (pipelines/harness.yml): the Plugin step in the VM's network, a Run step
// on the VM that reaches SC's API at SAUCE_CONNECT_HOST_API (an output
// variable), and the stop step.
func TestHarnessPluginStep(t *testing.T) {
	skipShort(t)
	s := newHarnessStage(t)
	// The README's stage leaves SC's API on the VM's port 8032; tests that
	// run at once need ports of their own.
	port := fmt.Sprint(freePort(t))
	began := time.Now()
	polled := s.exec(s.plugin("sauce_connect", "PLUGIN_NETWORK_MODE", "host", "PLUGIN_PROXY_LOCALHOST", "allow", "PLUGIN_API_HOST_PORT", port))
	t.Logf("the Plugin step ended, tunnel ready, %s after start_step", time.Since(began).Round(time.Millisecond))
	out := s.outputs("sauce_connect", polled)
	if out["SAUCE_TUNNEL_NAME"] != s.tunnel {
		t.Errorf("SAUCE_TUNNEL_NAME is %q, want %q (the name Harness's variables give): %v", out["SAUCE_TUNNEL_NAME"], s.tunnel, out)
	}
	api := out["SAUCE_CONNECT_HOST_API"]
	if api != "http://127.0.0.1:"+port {
		t.Fatalf("SAUCE_CONNECT_HOST_API is %q, want SC's API on the VM's loopback: %v", api, out)
	}
	s.tests("", `busybox wget -q -O- "$SAUCE_CONNECT_API/readyz" && echo " tunnel $SAUCE_TUNNEL_NAME ready"`,
		map[string]string{"SAUCE_CONNECT_API": api, "SAUCE_TUNNEL_NAME": out["SAUCE_TUNNEL_NAME"]}, "tunnel "+s.tunnel+" ready")
	s.exec(s.plugin("stop_sauce_connect", "PLUGIN_ACTION", "stop"))
	if sc, w := tunnelLeft(t, s.tunnel); sc+w != 0 {
		t.Errorf("after the stop step %d SC container(s) and %d watchdog(s) are left", sc, w)
	}
	s.destroy(cleanWithin)
}

// TestHarnessNoStopStep: a Plugin step in SC's own network on the stage
// network, a Run step container that reaches SC at SAUCE_CONNECT_API, no
// stop step; the stage's /destroy/ removes the Plugin step's container,
// and the watchdog ends the tunnel.
func TestHarnessNoStopStep(t *testing.T) {
	skipShort(t)
	s := newHarnessStage(t)
	needBusybox(t)
	out := s.outputs("sauce_connect", s.exec(s.plugin("sauce_connect")))
	api := out["SAUCE_CONNECT_API"]
	if api == "" {
		t.Fatalf("no SAUCE_CONNECT_API output: %v", out)
	}
	s.tests(busybox, `wget -q -O- "$SAUCE_CONNECT_API/readyz" && echo " reached $SAUCE_CONNECT_API"`,
		map[string]string{"SAUCE_CONNECT_API": api}, "reached "+api)
	if sc, w := tunnelLeft(t, s.tunnel); sc != 1 || w != 1 {
		t.Fatalf("before /destroy/: %d SC container(s), %d watchdog(s), want 1 and 1", sc, w)
	}
	took := s.destroy(cleanWithin)
	t.Logf("/destroy/ with no stop step: SC and its watchdog gone %s after the call", took.Round(time.Millisecond))
}

// TestHarnessBackgroundStep runs the seed's shape
// (pipelines/harness-background.yml): the plugin as a Background step in
// action run, settings as PLUGIN_* variables, a Run step on the VM that
// waits for /readyz on the published port, and the stage's end with no
// stop step: /destroy/ SIGKILLs the Background step's container.
func TestHarnessBackgroundStep(t *testing.T) {
	skipShort(t)
	s := newHarnessStage(t)
	port := fmt.Sprint(freePort(t))
	bg := s.plugin("sauce_connect", "PLUGIN_ACTION", "run", "PLUGIN_TUNNEL_NAME", s.tunnel, "PLUGIN_API_HOST_PORT", port)
	bg.Detach = true
	s.start(bg)
	if p := s.poll(bg.ID); p.Exited {
		t.Fatalf("the Background step has ended: exit %d %s\n%s", p.ExitCode, p.Error, s.log(bg.ID))
	}
	script := `for i in $(seq 1 60); do busybox wget -q -O- http://127.0.0.1:$PORT/readyz && break; sleep 1; done; busybox wget -q -O- http://127.0.0.1:$PORT/readyz && echo " ready on $PORT"`
	s.tests("", script, map[string]string{"PORT": port}, "ready on "+port)
	took := s.destroy(cleanWithin)
	t.Logf("/destroy/ of a Background step in action run: tunnel gone %s after the call", took.Round(time.Millisecond))
}

// TestHarnessDestroyWhileStarting: the stage ends (/destroy/, as when it is
// aborted) while the Plugin step still waits for the tunnel: lite-engine
// SIGKILLs the plugin mid-start, and nothing of the tunnel may stay.
func TestHarnessDestroyWhileStarting(t *testing.T) {
	skipShort(t)
	s := newHarnessStage(t)
	st := s.plugin("sauce_connect", "PLUGIN_ENV", `{"SAUCE_STANDIN_READY_DELAY":"60s"}`)
	s.start(st)
	s.background.Add(1)
	go func() { // the manager's poll, which the kill answers
		defer s.background.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		_, _ = s.le.PollStep(ctx, st.ID)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if sc, w := tunnelLeft(t, s.tunnel); sc == 1 && w == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("SC and its watchdog did not both start within 30 s:\n%s", s.log(st.ID))
		}
		time.Sleep(50 * time.Millisecond)
	}
	took := s.destroy(cleanWithin)
	t.Logf("/destroy/ mid-start: tunnel gone %s after the call", took.Round(time.Millisecond))
}

// TestHarnessLiteEngineKilled: lite-engine dies mid-stage (SIGKILL, as when
// the VM's agent is killed), so nothing removes the stage's containers. The
// Plugin step's container is still there, so the watchdog rightly keeps the
// tunnel; what ends it is max_lifetime (3 h by default; 20 s here).
func TestHarnessLiteEngineKilled(t *testing.T) {
	skipShort(t)
	s := newHarnessStage(t)
	const lifetime = 20 * time.Second
	st := s.plugin("sauce_connect", "PLUGIN_MAX_LIFETIME", lifetime.String(), "PLUGIN_READY_TIMEOUT", lifetime.String())
	s.exec(st)
	began := time.Now()
	s.le.Kill()
	s.destroyed, s.killed = true, true
	time.Sleep(5 * time.Second)
	if sc, w := tunnelLeft(t, s.tunnel); sc != 1 || w != 1 {
		t.Fatalf("5 s after lite-engine died: %d SC container(s), %d watchdog(s); the step container is still there, so the tunnel should be", sc, w)
	}
	awaitGone(t, eng, s.tunnel, lifetime+cleanWithin)
	t.Logf("lite-engine SIGKILLed: the tunnel stayed until max_lifetime, gone %s after the kill (max_lifetime %s from the start)",
		time.Since(began).Round(time.Millisecond), lifetime)
	left, err := eng.ListContainers(context.Background(), map[string]string{labelStage: s.id})
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 {
		t.Errorf("%d step container(s) of the dead engine's stage, want the Plugin step's alone", len(left))
	}
}
