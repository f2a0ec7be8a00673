package docker_test

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/drone-sauce-connect/drone-sauce-connect/internal/testenv"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/docker"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

// accessKey is distinctive so that any leak is found by searching for it.
const accessKey = "AK-7f3e-LEAKCHECK-91b2-d00d"

var standin string

func TestMain(m *testing.M) {
	os.Exit(func() int {
		flag.Parse()
		if testing.Short() {
			return m.Run()
		}
		e, err := engine.NewEnv(context.Background())
		if err != nil {
			if code := testenv.Unavailable("docker engine", err); code != 0 {
				return code
			}
			return m.Run() // the unit tests still run
		}
		defer e.Close()
		standin = "dsc-standin:it-" + testenv.Random(8)
		remove, err := testenv.StandinImage(standin)
		if err != nil {
			fmt.Fprintln(os.Stderr, "build stand-in image:", err)
			return 1
		}
		defer remove()
		return m.Run()
	}())
}

// harness runs the plugin in-process against the real engine and captures
// everything it prints, through the same masking writer main uses.
type harness struct {
	t      *testing.T
	eng    *engine.Engine
	s      plugin.Settings
	out    *testenv.SafeBuffer
	tunnel string
}

func newHarness(t *testing.T, env map[string]string) *harness {
	if testing.Short() {
		t.Skip("integration test")
	}
	t.Parallel()
	return anotherHarness(t, env)
}

// anotherHarness is newHarness for a second tunnel of the same test.
func anotherHarness(t *testing.T, env map[string]string) *harness {
	e := testenv.Engine(t)
	s := plugin.DefaultSettings()
	s.Username, s.AccessKey, s.Region = "alice", plugin.Secret(accessKey), "us-west"
	s.Image, s.Pull = standin, "never"
	s.APIHostPort = "0"
	s.ReadyTimeout = "20s"
	s.StopTimeout = "5s"
	s.RESTURL = "http://127.0.0.1:9" // never Sauce Labs' own API: a port nothing listens on
	tunnel := testenv.Name(t)
	s.TunnelName = tunnel
	knobs := `{"SAUCE_STANDIN_READY_DELAY":"300ms"`
	for k, v := range env {
		knobs += fmt.Sprintf(",%q:%q", k, v)
	}
	s.Env = knobs + "}"
	h := &harness{t: t, eng: e, s: s, out: &testenv.SafeBuffer{}, tunnel: tunnel}
	t.Cleanup(func() {
		testenv.AssertNoTunnel(t, e, tunnel)
		if strings.Contains(h.out.String(), accessKey) {
			t.Errorf("the access key appears in the output:\n%s", h.out.String())
		}
		if t.Failed() {
			t.Logf("plugin output:\n%s", h.out.String())
		}
	})
	return h
}

func (h *harness) exec(ctx context.Context, action string) error {
	h.t.Helper()
	s := h.s
	s.Action = action
	c, err := s.Config(plugin.Pipeline{}, "test", "x")
	if err != nil {
		h.t.Fatalf("settings: %v", err)
	}
	m := plugin.NewMasker(accessKey)
	w := m.Writer(h.out)
	defer w.Flush()
	log := logrus.New()
	log.SetOutput(w)
	log.SetFormatter(plugin.LogFormatter("text"))
	b := docker.New(plugin.NewSession(c, plugin.Options{Out: w, Masker: m, Log: log}), h.eng, h.eng.Access)
	return plugin.Perform(ctx, c, b)
}

func (h *harness) output() string { return h.out.String() }

var hostAPI = regexp.MustCompile(`API for host steps: +(\S+)`)

func (h *harness) hostURL() string {
	m := hostAPI.FindStringSubmatch(h.output())
	if m == nil {
		h.t.Fatalf("no host API URL in the output")
	}
	return m[1]
}

func (h *harness) containers() []engine.Summary {
	found, err := h.eng.ListContainers(context.Background(), map[string]string{plugin.LabelTunnel: h.tunnel})
	if err != nil {
		h.t.Fatal(err)
	}
	return found
}

func TestStartReuseStatusStop(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	if err := h.exec(ctx, "start"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(h.output(), "tunnel "+h.tunnel+" is up in region us-west") {
		t.Fatalf("no ready line")
	}
	if code := testenv.Get(t, h.hostURL()+"/readyz"); code != 200 {
		t.Fatalf("a later host step gets %d from /readyz", code)
	}
	first := h.containers()
	if err := h.exec(ctx, "start"); err != nil {
		t.Fatal(err)
	}
	if again := h.containers(); len(again) != 1 || again[0].ID != first[0].ID || !strings.Contains(h.output(), "reusing it") {
		t.Fatalf("a second start did not reuse the running tunnel: %v", again)
	}
	if err := h.exec(ctx, "status"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(h.output(), `"tunnel_name":"`+h.tunnel+`"`) {
		t.Error("status does not show SC's /info")
	}
	if err := h.exec(ctx, "stop"); err != nil {
		t.Fatal(err)
	}
	if left := h.containers(); len(left) != 0 {
		t.Fatalf("stop left %d container(s)", len(left))
	}
	if !strings.Contains(h.output(), "shutting down") {
		t.Error("stop did not let SC drain (no shutdown line in its log)")
	}
}

func TestDeadTunnelIsReplaced(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	if err := h.exec(ctx, "start"); err != nil {
		t.Fatal(err)
	}
	old := h.containers()[0].ID
	if _, err := h.eng.StopContainer(ctx, old, 0); err != nil {
		t.Fatal(err)
	}
	if err := h.exec(ctx, "start"); err != nil {
		t.Fatal(err)
	}
	now := h.containers()
	if len(now) != 1 || now[0].ID == old {
		t.Fatalf("the dead tunnel was not replaced by exactly one new one: %v", now)
	}
	if err := h.exec(ctx, "stop"); err != nil {
		t.Fatal(err)
	}
}

func TestBadCredentialsFailFastWithoutRetry(t *testing.T) {
	h := newHarness(t, map[string]string{"SAUCE_STANDIN_MODE": "bad-credentials", "SAUCE_STANDIN_LEAK_KEY": "true"})
	began := time.Now()
	err := h.exec(context.Background(), "start")
	var creds *plugin.CredentialsError
	if !errors.As(err, &creds) || plugin.ExitCode(err) != plugin.ExitCredentials {
		t.Fatalf("got %v, want a credentials error", err)
	}
	out := h.output()
	if n := strings.Count(out, "+ docker run"); n != 1 {
		t.Errorf("started SC %d times; bad credentials must not be retried", n)
	}
	if !strings.Contains(out, "401 Unauthorized") || !strings.Contains(out, "access-key=***") {
		t.Errorf("the masked log tail is missing:\n%s", out)
	}
	if time.Since(began) > 5*time.Second {
		t.Errorf("took %s to fail", time.Since(began))
	}
}

func TestRetryableExitIsRetried(t *testing.T) {
	h := newHarness(t, map[string]string{"SAUCE_STANDIN_MODE": "network-error"})
	h.s.Retries = "1"
	err := h.exec(context.Background(), "start")
	var ex *plugin.ExitedError
	if !errors.As(err, &ex) || ex.ExitCode != 1 || plugin.ExitCode(err) != plugin.ExitFailure {
		t.Fatalf("got %v, want SC's exit after the retry", err)
	}
	if n := strings.Count(h.output(), "+ docker run"); n != 2 {
		t.Errorf("started SC %d times, want 2 (one retry)", n)
	}
}

func TestNeverReadyTimesOut(t *testing.T) {
	h := newHarness(t, map[string]string{"SAUCE_STANDIN_MODE": "never-ready"})
	// Long enough for a busy engine to start the container (make test runs
	// the packages at once), so that the wait itself times out.
	h.s.ReadyTimeout = "5s"
	err := h.exec(context.Background(), "start")
	var to *plugin.TimeoutError
	if !errors.As(err, &to) || plugin.ExitCode(err) != plugin.ExitTimeout {
		t.Fatalf("got %v, want a timeout", err)
	}
	if !strings.Contains(err.Error(), "/readyz to answer 200") || !strings.Contains(err.Error(), "HTTP 503") {
		t.Errorf("the timeout does not say what it awaited and what it got: %v", err)
	}
}

func TestSignalDuringWaitRemovesTheContainer(t *testing.T) {
	h := newHarness(t, map[string]string{"SAUCE_STANDIN_MODE": "never-ready"})
	ctx, cancel := context.WithCancelCause(context.Background())
	go func() {
		for !strings.Contains(h.output(), "+ docker run") {
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond)
		cancel(&plugin.SignalError{Signal: syscall.SIGTERM})
	}()
	err := h.exec(ctx, "start")
	if plugin.ExitCode(err) != 128+int(syscall.SIGTERM) {
		t.Fatalf("got %v (exit %d), want exit 143", err, plugin.ExitCode(err))
	}
}

func TestStopWhenNothingRuns(t *testing.T) {
	h := newHarness(t, nil)
	if err := h.exec(context.Background(), "stop"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(h.output(), "nothing to stop") {
		t.Errorf("no warning: %s", h.output())
	}
}

func TestPullNeverWithMissingImage(t *testing.T) {
	h := newHarness(t, nil)
	h.s.Image = "dsc-missing:" + testenv.Random(8)
	err := h.exec(context.Background(), "start")
	if err == nil || !strings.Contains(err.Error(), "is not on the docker engine and pull is never") {
		t.Fatalf("got %v", err)
	}
	if strings.Contains(h.output(), "+ docker run") {
		t.Error("a container was created")
	}
}

func TestHostPortTaken(t *testing.T) {
	h := newHarness(t, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	h.s.APIHostPort = fmt.Sprint(port)
	err = h.exec(context.Background(), "start")
	want := fmt.Sprintf("host port %d (127.0.0.1) is already in use; set api_host_port to a free port, or 0 to pick one", port)
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}

func TestForeignContainerWithTheName(t *testing.T) {
	h := newHarness(t, nil)
	name := "foreign-" + h.tunnel
	ctx := context.Background()
	id, err := h.eng.CreateContainer(ctx, engine.ContainerSpec{Name: name, Image: standin, Cmd: []string{"version"}, Labels: testenv.Labels})
	if err != nil {
		t.Fatal(err)
	}
	defer h.eng.RemoveContainer(ctx, id)
	h.s.ContainerName = name
	err = h.exec(ctx, "start")
	if err == nil || !strings.Contains(err.Error(), "container name "+name+" is taken by a container this plugin did not start; set container_name") {
		t.Fatalf("got %v", err)
	}
	if _, err := h.eng.InspectContainer(ctx, id); err != nil {
		t.Errorf("the foreign container was touched: %v", err)
	}
}

func TestRunModeEndsWhenSCCrashes(t *testing.T) {
	h := newHarness(t, map[string]string{"SAUCE_STANDIN_MODE": "crash-after-ready", "SAUCE_STANDIN_CRASH_AFTER": "500ms"})
	err := h.exec(context.Background(), "run")
	if err == nil || !strings.Contains(err.Error(), "sauce connect exited with code 1 while the tunnel was up") {
		t.Fatalf("got %v", err)
	}
	if !strings.Contains(h.output(), "[sauce-connect]") {
		t.Error("run mode did not stream SC's log")
	}
}

func TestRunModeStopsGracefullyOnSignalAndMasksSCLog(t *testing.T) {
	h := newHarness(t, map[string]string{"SAUCE_STANDIN_LEAK_KEY": "true", "SAUCE_STANDIN_DRAIN": "300ms"})
	h.s.LogsFile = t.TempDir() + "/sc.log"
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.exec(ctx, "run") }()
	deadline := time.After(15 * time.Second)
	for !strings.Contains(h.output(), " is up in region ") {
		select {
		case err := <-done:
			t.Fatalf("run ended before ready: %v", err)
		case <-deadline:
			t.Fatal("not ready in time")
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel(&plugin.SignalError{Signal: syscall.SIGINT})
	if err := <-done; err != nil {
		t.Fatalf("a graceful stop is success, got %v", err)
	}
	out := h.output()
	if !strings.Contains(out, "[sauce-connect]") || !strings.Contains(out, "access-key=***") || !strings.Contains(out, "tunnel closed, bye") {
		t.Errorf("SC's streamed log is missing, unmasked or was not drained:\n%s", out)
	}
	saved, err := os.ReadFile(h.s.LogsFile)
	if err != nil || !strings.Contains(string(saved), "access-key=***") || strings.Contains(string(saved), accessKey) {
		t.Errorf("logs_file is missing or unmasked (%v):\n%s", err, saved)
	}
}

// TestPullFromAPrivateMirror pulls the SC image from a registry that needs
// a login (registry_username / registry_password), shows plain progress
// lines, and never prints the password; a wrong password fails clearly.
func TestPullFromAPrivateMirror(t *testing.T) {
	h := newHarness(t, nil)
	const password = "REG-PW-LEAKCHECK-4242"
	reg, err := testenv.StartRegistry("ci", password)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	// A layer of its own, which the engine cannot hold yet from another
	// test: the pull must download it (and say so).
	image, err := reg.PushFresh("mirror/sauce-connect:" + testenv.Random(6))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testenv.RemoveImage(image) })
	h.s.Image, h.s.Pull, h.s.RegistryUsername, h.s.RegistryPassword = image, "if-not-exists", "ci", "wrong-"+password
	wrong := h.exec(context.Background(), "start")
	if wrong == nil || !strings.Contains(wrong.Error(), "pull image "+image) || !strings.Contains(wrong.Error(), "for a private registry or mirror, registry_username and registry_password") {
		t.Fatalf("a wrong registry password: %v", wrong)
	}
	t.Logf("with a wrong password: %v", wrong)
	h.s.RegistryPassword = password
	if err := h.exec(context.Background(), "start"); err != nil {
		t.Fatal(err)
	}
	out := h.output()
	for _, want := range []string{"pulling image", "Pull complete", "Downloaded newer image for " + image, " is up in region "} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in the output", want)
		}
	}
	if strings.Contains(out, password) || strings.Contains(wrong.Error(), password) {
		t.Error("the registry password was printed")
	}
	if strings.Contains(out, "\x1b[") {
		t.Error("pull progress has terminal escapes; CI logs want plain lines")
	}
	if err := h.exec(context.Background(), "stop"); err != nil {
		t.Fatal(err)
	}
}

// neighbour is a second harness on a tunnel whose name, and so whose
// container name, begins with h's (tunnel T and T-b: sauce-connect-T and
// sauce-connect-T-b), with its own stand-in knobs and output.
func (h *harness) neighbour(env map[string]string) *harness {
	n := *h
	n.tunnel = h.tunnel + "-b"
	n.s.TunnelName = n.tunnel
	n.out = &testenv.SafeBuffer{}
	knobs := `{"SAUCE_STANDIN_READY_DELAY":"300ms"`
	for k, v := range env {
		knobs += fmt.Sprintf(",%q:%q", k, v)
	}
	n.s.Env = knobs + "}"
	h.t.Cleanup(func() {
		testenv.AssertNoTunnel(h.t, h.eng, n.tunnel)
		if h.t.Failed() {
			h.t.Logf("neighbour's output:\n%s", n.out.String())
		}
	})
	return &n
}

// TestNamePrefixNeighbours: the engine matches container filters by
// prefix, so tunnel T must not read the death of tunnel T-b (whose
// container name begins with T's) as its own, and stop and status of one
// must not touch the other.
func TestNamePrefixNeighbours(t *testing.T) {
	h := newHarness(t, map[string]string{"SAUCE_STANDIN_READY_DELAY": "2s"})
	bad := h.neighbour(map[string]string{"SAUCE_STANDIN_MODE": "bad-credentials"})
	h.s.Retries = "2"
	ctx := context.Background()
	errs := make(chan error, 1)
	go func() { errs <- bad.exec(ctx, "start") }()
	if err := h.exec(ctx, "start"); err != nil {
		t.Fatalf("tunnel %s failed beside its refused neighbour: %v", h.tunnel, err)
	}
	if err := <-errs; plugin.ExitCode(err) != plugin.ExitCredentials {
		t.Fatalf("the neighbour: got %v, want exit %d", err, plugin.ExitCredentials)
	}
	if n := strings.Count(h.output(), "+ docker run"); n != 1 || strings.Contains(h.output(), "retrying") {
		t.Fatalf("tunnel %s started SC %d times; its neighbour's death was read as its own:\n%s", h.tunnel, n, h.output())
	}

	good := h.neighbour(nil)
	if err := good.exec(ctx, "start"); err != nil {
		t.Fatal(err)
	}
	if err := h.exec(ctx, "stop"); err != nil {
		t.Fatal(err)
	}
	if left := good.containers(); len(left) != 1 || left[0].State != "running" {
		t.Fatalf("stopping %s touched %s: %v", h.tunnel, good.tunnel, left)
	}
	if err := h.exec(ctx, "status"); err == nil || !strings.Contains(err.Error(), "no tunnel named "+h.tunnel) {
		t.Fatalf("status of the stopped tunnel answered for its neighbour: %v", err)
	}
	if err := good.exec(ctx, "status"); err != nil {
		t.Fatal(err)
	}
	if err := good.exec(ctx, "stop"); err != nil {
		t.Fatal(err)
	}
}

// TestPullOfAMissingTagAndByDigest: a tag the registry does not have fails
// the start with one line naming the image and where the tags are listed,
// and leaves nothing; image@sha256:<digest> pulls and starts.
func TestPullOfAMissingTagAndByDigest(t *testing.T) {
	h := newHarness(t, nil)
	reg, err := testenv.StartRegistry("ci", "pw")
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	repo := "mirror/sauce-connect-" + testenv.Random(6)
	pushed, err := reg.Push(repo + ":5.5.3")
	if err != nil {
		t.Fatal(err)
	}
	h.s.Pull, h.s.RegistryUsername, h.s.RegistryPassword = "if-not-exists", "ci", "pw"
	h.s.Image = reg.Host + "/" + repo + ":5.9.9"
	missing := h.exec(context.Background(), "start")
	if missing == nil || !strings.Contains(missing.Error(), "the registry has no image "+h.s.Image) || !strings.Contains(missing.Error(), "hub.docker.com/r/saucelabs/sauce-connect/tags") || strings.Contains(missing.Error(), "\n") {
		t.Fatalf("a tag that does not exist: %v", missing)
	}
	t.Logf("a missing tag: %v", missing)
	testenv.AssertNoTunnel(t, h.eng, h.tunnel)

	digest, err := reg.Digest(pushed)
	if err != nil {
		t.Fatal(err)
	}
	h.s.Image = reg.Host + "/" + repo + "@" + digest
	t.Cleanup(func() { testenv.RemoveImage(h.s.Image) })
	if err := h.exec(context.Background(), "start"); err != nil {
		t.Fatalf("start by digest: %v", err)
	}
	if err := h.exec(context.Background(), "stop"); err != nil {
		t.Fatal(err)
	}
}

// TestBackstopDeletesTheTunnelOnlyAfterAnUngracefulEnd: a stop deletes the
// tunnel through Sauce's REST API (here the stand-in's) exactly when SC did
// not close it itself: never after a graceful stop, always after a drain
// that stop_timeout cut short or an SC that crashed before the stop, by the
// ID Sauce confirmed at the start; a REST API that could not be reached
// then has recorded no ID, so nothing is deleted, and the stop says so.
func TestBackstopDeletesTheTunnelOnlyAfterAnUngracefulEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	api, err := testenv.StartSauceAPI()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.Stop)
	for _, tc := range []struct {
		name    string
		knobs   map[string]string
		timeout string
		crash   bool
		restURL string
		want    []string
		says    string
	}{
		{name: "graceful stop", want: []string{"sc"}},
		{name: "drain cut short", knobs: map[string]string{"SAUCE_STANDIN_DRAIN": "20s"}, timeout: "1s", want: []string{"plugin"},
			says: "sauce connect was killed when stop_timeout ran out: tunnel %s (standin-tunnel-"},
		{name: "crashed before the stop", knobs: map[string]string{"SAUCE_STANDIN_MODE": "crash-after-ready", "SAUCE_STANDIN_CRASH_AFTER": "500ms"}, crash: true,
			want: []string{"plugin"}, says: "sauce connect had already ended with exit code 1: tunnel %s (standin-tunnel-"},
		{name: "rest api unreachable", knobs: map[string]string{"SAUCE_STANDIN_DRAIN": "20s"}, timeout: "1s", restURL: "http://127.0.0.1:1",
			says: "sauce connect was killed when stop_timeout ran out; the tunnel may stay registered at Sauce Labs until it times out: its Sauce Labs ID was never recorded (Sauce had not confirmed it), and deleting by name could end another pipeline's tunnel %s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			knobs := map[string]string{"SAUCE_STANDIN_REST_URL": api.URL}
			maps.Copy(knobs, tc.knobs)
			h := newHarness(t, knobs)
			h.s.RESTURL = cmp.Or(tc.restURL, api.URL)
			h.s.StopTimeout = cmp.Or(tc.timeout, h.s.StopTimeout)
			if err := h.exec(context.Background(), "start"); err != nil {
				t.Fatal(err)
			}
			if tc.crash {
				awaitExited(t, h)
			}
			if err := h.exec(context.Background(), "stop"); err != nil {
				t.Fatalf("a stop is no failure whatever the backstop does: %v", err)
			}
			by, err := api.DeletesOf(h.tunnel)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(by, tc.want) {
				t.Errorf("the tunnel was deleted at Sauce Labs by %v, want %v", by, tc.want)
			}
			if tc.says != "" && !strings.Contains(h.output(), fmt.Sprintf(tc.says, h.tunnel)) {
				t.Errorf("no %q in the output", fmt.Sprintf(tc.says, h.tunnel))
			}
			if tc.says == "" && strings.Contains(strings.ReplaceAll(h.output(), "confirmed by Sauce Labs", ""), "Sauce Labs") {
				t.Errorf("a graceful stop spoke of the REST API:\n%s", h.output())
			}
		})
	}
}

// awaitExited waits until the harness's SC has exited by itself.
func awaitExited(t *testing.T, h *harness) {
	t.Helper()
	for began := time.Now(); time.Since(began) < 20*time.Second; time.Sleep(50 * time.Millisecond) {
		cs := h.containers()
		if len(cs) == 1 && cs[0].State == "exited" {
			return
		}
	}
	t.Fatal("SC did not crash")
}

// sauceAPI starts a REST double of its own for a test (flags: rest.go) and
// points the harness, and its SC, at it.
func (h *harness) sauceAPI(flags ...string) *testenv.SauceAPI {
	h.t.Helper()
	api, err := testenv.StartSauceAPI(flags...)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(api.Stop)
	h.s.RESTURL = api.URL
	h.s.Env = strings.TrimSuffix(h.s.Env, "}") + fmt.Sprintf(",%q:%q}", "SAUCE_STANDIN_REST_URL", api.URL)
	return api
}

var confirmedIn = regexp.MustCompile(`tunnel \S+ confirmed by Sauce Labs in (\S+) \(tunnel ID (\S+)\)`)

// TestStartWaitsForSauce: SC's /readyz says ready before Sauce lists the
// tunnel (the double lists it 1.5 s after SC registered it): the start
// waits for Sauce, says how long that took, and records the tunnel's ID in
// SC's container, where the stop step and the watchdog read it. A tunnel
// Sauce never lists fails the start at ready_timeout, naming what Sauce
// listed, exit 3, nothing left behind.
func TestStartWaitsForSauce(t *testing.T) {
	t.Run("listed late", func(t *testing.T) {
		h := newHarness(t, nil)
		api := h.sauceAPI("--list-delay", "1500ms")
		began := time.Now()
		if err := h.exec(context.Background(), "start"); err != nil {
			t.Fatal(err)
		}
		m := confirmedIn.FindStringSubmatch(h.output())
		if m == nil {
			t.Fatalf("no confirmation:\n%s", h.output())
		}
		took, err := time.ParseDuration(m[1])
		if err != nil || took < time.Second || time.Since(began) < 1500*time.Millisecond {
			t.Errorf("confirmed in %s (%v), the start took %s: Sauce listed the tunnel only 1.5 s after SC's ready", m[1], err, time.Since(began))
		}
		running, err := api.Running(h.tunnel)
		if err != nil || len(running) != 1 || running[0] != m[2] {
			t.Fatalf("the double runs %v (%v), the start confirmed %s", running, err, m[2])
		}
		recorded, err := h.eng.ReadFile(context.Background(), h.containers()[0].ID, "/run/drone-sauce-connect/sauce-tunnel-id")
		if err != nil || string(recorded) != m[2] {
			t.Errorf("SC's container records %q (%v), want %s", recorded, err, m[2])
		}
		if err := h.exec(context.Background(), "stop"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("never listed", func(t *testing.T) {
		h := newHarness(t, nil)
		h.sauceAPI("--never-list")
		h.s.ReadyTimeout = "8s" // SC ready first, on a busy engine too
		err := h.exec(context.Background(), "start")
		if plugin.ExitCode(err) != plugin.ExitTimeout || !strings.Contains(fmt.Sprint(err), "waited for Sauce Labs to list tunnel "+h.tunnel+" (ID standin-tunnel-") ||
			!strings.Contains(fmt.Sprint(err), "Sauce Labs lists no running tunnel for alice") {
			t.Fatalf("exit %d: %v\n%s", plugin.ExitCode(err), err, h.output())
		}
	})
}

// TestTunnelLimitListsTheAccountsTunnels: an account at its limit (the
// double allows one tunnel, which a leaked tunnel of another name holds):
// the start fails at once, not retried, and the error lists the account's
// running tunnels, so that the leaked one can be told and ended.
func TestTunnelLimitListsTheAccountsTunnels(t *testing.T) {
	leaked := newHarness(t, nil)
	api := leaked.sauceAPI("--limit", "1")
	if err := leaked.exec(context.Background(), "start"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = leaked.exec(context.Background(), "stop") })
	h := anotherHarness(t, nil)
	h.s.RESTURL = api.URL
	h.s.Env = strings.TrimSuffix(h.s.Env, "}") + fmt.Sprintf(",%q:%q}", "SAUCE_STANDIN_REST_URL", api.URL)
	err := h.exec(context.Background(), "start")
	for _, want := range []string{"the account's limit of active tunnels is reached", "the account's running tunnels (1):", "  - " + leaked.tunnel + " (id standin-tunnel-", "owner alice", "runner=local", "tunnels/<id>"} {
		if !strings.Contains(fmt.Sprint(err), want) {
			t.Errorf("no %q in: %v", want, err)
		}
	}
	if strings.Contains(h.output(), "retrying") {
		t.Errorf("the tunnel limit was retried:\n%s", h.output())
	}
}

// TestStalledRegistry: a registry that stops sending mid-layer (its blobs
// hang after their first bytes) fails the start when ready_timeout runs
// out, exit 3, naming the pull, and leaves nothing behind; the pull is
// counted in ready_timeout, not waited for without end.
func TestStalledRegistry(t *testing.T) {
	h := newHarness(t, nil)
	reg, err := testenv.StartRegistry("ci", "pw")
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	image, err := reg.PushFresh("mirror/sauce-connect-stalled:" + testenv.Random(6))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testenv.RemoveImage(image) })
	reg.Stall.Store(true)
	h.s.Image, h.s.Pull, h.s.RegistryUsername, h.s.RegistryPassword, h.s.ReadyTimeout = image, "always", "ci", "pw", "3s"
	began := time.Now()
	err = h.exec(context.Background(), "start")
	if plugin.ExitCode(err) != plugin.ExitTimeout || !strings.Contains(fmt.Sprint(err), "waited for the pull of image "+image) || time.Since(began) > 15*time.Second {
		t.Fatalf("after %s, exit %d: %v", time.Since(began), plugin.ExitCode(err), err)
	}
}
