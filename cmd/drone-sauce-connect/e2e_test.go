package main_test

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/internal/testenv"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

// accessKey is distinctive so that any leak is found by searching for it.
const accessKey = "AK-e2e-0f9d-LEAKCHECK-77aa"

var (
	eng         *engine.Engine
	pluginImage string
	standin     string
	// standinPlain is the stand-in without a HEALTHCHECK, as a non-root
	// USER: the SC image's other possible shape.
	standinPlain string
	binary       string
	// busybox is a job image with a shell for the real runners' script
	// steps; busyboxErr says why there is none.
	busybox    string
	busyboxErr error
)

// needBusybox skips the test (fails it under CI=true) without the busybox image.
func needBusybox(t *testing.T) {
	t.Helper()
	if busyboxErr != nil {
		testenv.Missing(t, busyboxErr.Error())
	}
}

func TestMain(m *testing.M) {
	os.Exit(func() int {
		flag.Parse()
		if testing.Short() {
			return m.Run()
		}
		var err error
		eng, err = engine.NewEnv(context.Background())
		if err != nil {
			return testenv.Unavailable("docker engine", err)
		}
		defer eng.Close()
		dir, err := os.MkdirTemp("", "dsc-e2e-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		if binary, err = testenv.GoBuild("cmd/drone-sauce-connect", dir, "drone-sauce-connect"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		run := testenv.Random(8)
		pluginImage, standin = "dsc-plugin:e2e-"+run, "dsc-standin:e2e-"+run
		rmPlugin, err := testenv.PluginImage(pluginImage)
		if err != nil {
			fmt.Fprintln(os.Stderr, "build plugin image:", err)
			return 1
		}
		defer rmPlugin()
		rmStandin, err := testenv.StandinImage(standin)
		if err != nil {
			fmt.Fprintln(os.Stderr, "build stand-in image:", err)
			return 1
		}
		defer rmStandin()
		standinPlain = "dsc-standin-plain:e2e-" + run
		rmPlain, err := testenv.StandinPlainImage(standinPlain)
		if err != nil {
			fmt.Fprintln(os.Stderr, "build plain stand-in image:", err)
			return 1
		}
		defer rmPlain()
		busybox = "dsc-busybox:e2e-" + run
		if rmBusybox, err := testenv.BusyboxImage(busybox); err != nil {
			busyboxErr = fmt.Errorf("build the busybox job image: %w", err)
		} else {
			defer rmBusybox()
		}
		code := m.Run()
		_ = os.Remove(testenv.LiteShared) // lite-engine's shared folder, when the stages left it empty
		stopSecondEngine()
		if err := stopNode(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
		return code
	}())
}

func skipShort(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	t.Parallel()
}

// pluginEnv is what every step of a pipeline gives the plugin.
func pluginEnv(extra ...string) []engine.EnvVar {
	env := []engine.EnvVar{
		{Name: "PLUGIN_USERNAME", Value: "alice"},
		{Name: "PLUGIN_REGION", Value: "us-west"},
		{Name: "PLUGIN_ACCESS_KEY", Value: accessKey},
		{Name: "PLUGIN_IMAGE", Value: standin},
		{Name: "PLUGIN_PULL", Value: "never"},
		{Name: "PLUGIN_ENV", Value: `{"SAUCE_STANDIN_READY_DELAY":"300ms"}`},
		// No test reaches Sauce Labs' real REST API (see offlineREST).
		{Name: "PLUGIN_REST_URL", Value: offlineREST},
	}
	for i := 0; i+1 < len(extra); i += 2 {
		env = append(env, engine.EnvVar{Name: extra[i], Value: extra[i+1]})
	}
	return env
}

// offlineREST is where the tests' backstop calls go unless a test gives its
// own stand-in: a port nothing listens on, so that a stop that kills SC
// never calls Sauce Labs with the tests' credentials.
const offlineREST = "http://127.0.0.1:9"

func noKey(t *testing.T, what, out string) {
	t.Helper()
	if strings.Contains(out, accessKey) {
		t.Errorf("the access key appears in %s:\n%s", what, out)
	}
}

// step runs a pipeline step container to its end and requires exit 0. The
// container is kept, as runners keep step containers until the pipeline
// ends, unless the engine removes it (AutoRemove); drone.teardown removes it.
func step(t *testing.T, name string, s engine.ContainerSpec) testenv.Ran {
	t.Helper()
	ran, err := testenv.RunContainer(context.Background(), eng, s, 2*time.Minute, true)
	if ran.ID != "" && !s.AutoRemove {
		t.Cleanup(func() { _ = eng.RemoveContainer(context.Background(), ran.ID) })
	}
	if err != nil {
		t.Fatalf("%s step: %v\n%s", name, err, ran.Logs)
	}
	noKey(t, name+" step's log", ran.Logs)
	if ran.ExitCode != 0 {
		t.Fatalf("%s step exited with %d:\n%s", name, ran.ExitCode, ran.Logs)
	}
	return ran
}

// drone lays out what the Drone docker runner gives a step (a per-build
// bridge network, the step name as alias, the socket, DRONE_* set), for the
// tests where the runner itself plays no part or cannot be driven (the
// real runner runs in drone_exec_test.go).
type drone struct {
	t           *testing.T
	net         string
	repo, build string
	tunnel      string
	steps       []string
}

func newDrone(t *testing.T) *drone {
	d := &drone{t: t, net: "drone-" + testenv.Random(12), repo: "e2e/" + testenv.Random(6), build: fmt.Sprint(100 + len(t.Name()))}
	d.tunnel = strings.ReplaceAll(d.repo, "/", "-") + "-" + d.build + "-default"
	if err := testenv.CreateNetwork(d.net); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, id := range d.steps {
			_ = eng.RemoveContainer(context.Background(), id)
		}
		testenv.AssertNoTunnel(t, eng, d.tunnel)
		if err := eng.RemoveNetwork(context.Background(), d.net); err != nil {
			n, _ := eng.InspectNetwork(context.Background(), d.net)
			t.Errorf("the build network cannot be removed: %v; attached: %v", err, n.Containers)
		}
	})
	return d
}

// spec is a plugin step; extra are more NAME, value pairs.
func (d *drone) spec(name string, extra ...string) engine.ContainerSpec {
	env := []string{"CI", "true", "DRONE", "true", "DRONE_REPO", d.repo, "DRONE_BUILD_NUMBER", d.build,
		"DRONE_STAGE_NAME", "default", "DRONE_DOCKER_NETWORK_ID", d.net, "DRONE_STEP_NAME", name}
	return engine.ContainerSpec{
		Name: d.net + "-" + name, Image: pluginImage, Mounts: []engine.Mount{testenv.Socket},
		Env:      pluginEnv(append(env, extra...)...),
		Networks: []engine.NetworkAttachment{{Network: d.net, Aliases: []string{name}}},
		Labels:   map[string]string{"io.drone": "true", "io.drone.build.number": d.build},
	}
}

func (d *drone) run(name string, s engine.ContainerSpec) testenv.Ran {
	d.t.Helper()
	ran := step(d.t, name, s)
	d.steps = append(d.steps, ran.ID)
	return ran
}

// left counts the tunnel's SC containers and watchdogs still on the engine.
func (d *drone) left() (sc, watchdogs int) { return tunnelLeft(d.t, d.tunnel) }

// tunnelLeft counts a tunnel's SC containers and watchdogs on the engine.
func tunnelLeft(t *testing.T, tunnel string) (sc, watchdogs int) {
	t.Helper()
	found, err := eng.ListContainers(context.Background(), map[string]string{plugin.LabelTunnel: tunnel})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range found {
		if c.Labels[plugin.LabelRole] == plugin.RoleWatchdog {
			watchdogs++
		} else {
			sc++
		}
	}
	return sc, watchdogs
}

// waitGone waits up to limit until nothing of the tunnel is left.
func (d *drone) waitGone(limit time.Duration) (time.Duration, bool) {
	began := time.Now()
	for time.Since(began) < limit {
		if sc, w := d.left(); sc == 0 && w == 0 {
			return time.Since(began), true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(began), false
}

// TestGitHubAction runs the plugin image as the GitHub runner runs a
// container action in a job without a job container (--rm, default bridge,
// socket and file-command folder mounted, INPUT_* only, as `uses: docker://`
// passes them): a host step reaches the published API, then the post step
// (action.yml's post-entrypoint, which sees the saved STATE_*) removes the
// tunnel. GitHub's hosted runner cannot run here, so this plays it; act, the
// runner that can, is driven for real in runners_test.go.
func TestGitHubAction(t *testing.T) {
	skipShort(t)
	files := t.TempDir()
	if err := os.Chmod(files, 0o777); err != nil {
		t.Fatal(err)
	}
	runID := testenv.Random(10)
	gh := []engine.EnvVar{
		{Name: "CI", Value: "true"}, {Name: "GITHUB_ACTIONS", Value: "true"},
		{Name: "GITHUB_REPOSITORY", Value: "acme/web"}, {Name: "GITHUB_RUN_ID", Value: runID},
		{Name: "GITHUB_RUN_ATTEMPT", Value: "1"}, {Name: "GITHUB_JOB", Value: "browser-tests"},
		{Name: "GITHUB_OUTPUT", Value: "/github/file_commands/output"},
		{Name: "GITHUB_STATE", Value: "/github/file_commands/state"},
		{Name: "GITHUB_STEP_SUMMARY", Value: "/github/file_commands/summary"},
		{Name: "INPUT_USERNAME", Value: "alice"}, {Name: "INPUT_ACCESS_KEY", Value: accessKey}, {Name: "INPUT_REGION", Value: "us-west"},
		{Name: "INPUT_IMAGE", Value: standin}, {Name: "INPUT_PULL", Value: "never"},
		{Name: "INPUT_API_HOST_PORT", Value: fmt.Sprint(freePort(t))},
		{Name: "INPUT_ENV", Value: `{"SAUCE_STANDIN_READY_DELAY":"300ms"}`},
	}
	mounts := []engine.Mount{testenv.Socket, {Source: files, Target: "/github/file_commands"}}
	main := step(t, "action", engine.ContainerSpec{Name: "gh-" + runID, Image: pluginImage, Env: gh, Mounts: mounts, AutoRemove: true})
	outputs := readKV(t, filepath.Join(files, "output"))
	hostURL := outputs["host_api_url"]
	if !strings.HasPrefix(hostURL, "http://127.0.0.1:") || outputs["tunnel_name"] != "acme-web-"+runID+"-1-browser-tests" || outputs["region"] != "us-west" {
		t.Fatalf("outputs: %v\n%s", outputs, main.Logs)
	}
	if code := testenv.Get(t, hostURL+"/readyz"); code != 200 {
		t.Fatalf("a host step gets %d from %s/readyz", code, hostURL)
	}
	summary, _ := os.ReadFile(filepath.Join(files, "summary"))
	if !strings.Contains(string(summary), "| Tunnel | `"+outputs["tunnel_name"]+"` |") {
		t.Errorf("step summary: %s", summary)
	}
	state := readKV(t, filepath.Join(files, "state"))
	post := append(append([]engine.EnvVar{}, gh...), engine.EnvVar{Name: "STATE_TUNNEL_NAME", Value: state["TUNNEL_NAME"]})
	ran := step(t, "post", engine.ContainerSpec{Name: "gh-post-" + runID, Image: pluginImage, Entrypoint: []string{"/bin/" + plugin.PostName},
		Env: post, Mounts: mounts, AutoRemove: true})
	if !strings.Contains(ran.Logs, "stopped and removed") {
		t.Errorf("the post step did not stop the tunnel:\n%s", ran.Logs)
	}
	testenv.AssertNoTunnel(t, eng, outputs["tunnel_name"])
	for _, f := range []string{"output", "state", "summary"} {
		b, _ := os.ReadFile(filepath.Join(files, f))
		noKey(t, f, string(b))
	}
}

func readKV(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			out[k] = v
		}
	}
	return out
}

// proc is the plugin binary running on the host, as a local user or a
// host step runs it.
type proc struct {
	cmd *exec.Cmd
	out testenv.SafeBuffer
}

func (p *proc) output() string { return p.out.String() }

func startBinary(t *testing.T, env ...string) *proc {
	t.Helper()
	return startBinaryAs(t, binary, env...)
}

// startBinaryAs is startBinary for the binary at path (the post step's
// name is a link to it).
func startBinaryAs(t *testing.T, path string, env ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(path)}
	p.cmd.Env = append(os.Environ(), "PLUGIN_USERNAME=alice", "PLUGIN_ACCESS_KEY="+accessKey, "PLUGIN_REGION=us-west", "PLUGIN_IMAGE="+standin,
		"PLUGIN_PULL=never", "PLUGIN_API_HOST_PORT=0", `PLUGIN_ENV={"SAUCE_STANDIN_READY_DELAY":"300ms"}`, "PLUGIN_REST_URL="+offlineREST)
	p.cmd.Env = append(p.cmd.Env, env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *proc) wait(t *testing.T) int {
	t.Helper()
	err := p.cmd.Wait()
	noKey(t, "the plugin's output", p.output())
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

func (p *proc) waitFor(t *testing.T, text string) {
	t.Helper()
	awaitText(t, &p.out, text, 30*time.Second)
}

var hostAPI = regexp.MustCompile(`API for host steps: +(\S+)`)

func TestHostBinaryStartAndStop(t *testing.T) {
	skipShort(t)
	tunnel := "host-" + testenv.Random(8)
	start := startBinary(t, "PLUGIN_TUNNEL_NAME="+tunnel)
	if code := start.wait(t); code != 0 {
		t.Fatalf("start exited %d:\n%s", code, start.output())
	}
	m := hostAPI.FindStringSubmatch(start.output())
	if m == nil {
		t.Fatalf("no host URL:\n%s", start.output())
	}
	if code := testenv.Get(t, m[1]+"/readyz"); code != 200 {
		t.Fatalf("a later host step gets %d", code)
	}
	stop := startBinary(t, "PLUGIN_TUNNEL_NAME="+tunnel, "PLUGIN_ACTION=stop")
	if code := stop.wait(t); code != 0 {
		t.Fatalf("stop exited %d:\n%s", code, stop.output())
	}
	testenv.AssertNoTunnel(t, eng, tunnel)
}

func TestBinarySignalDuringWait(t *testing.T) {
	skipShort(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			tunnel := "sig-" + testenv.Random(8)
			p := startBinary(t, "PLUGIN_TUNNEL_NAME="+tunnel, `PLUGIN_ENV={"SAUCE_STANDIN_MODE":"never-ready"}`)
			p.waitFor(t, "+ docker run")
			time.Sleep(300 * time.Millisecond)
			_ = p.cmd.Process.Signal(sig)
			if code := p.wait(t); code != 128+int(sig) {
				t.Errorf("exit code %d, want %d:\n%s", code, 128+int(sig), p.output())
			}
			testenv.AssertNoTunnel(t, eng, tunnel)
		})
	}
}

func TestBinaryRunModeSIGINT(t *testing.T) {
	skipShort(t)
	tunnel := "run-" + testenv.Random(8)
	p := startBinary(t, "PLUGIN_TUNNEL_NAME="+tunnel, "PLUGIN_ACTION=run", `PLUGIN_ENV={"SAUCE_STANDIN_LEAK_KEY":"true"}`)
	p.waitFor(t, " is up in region ")
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	if code := p.wait(t); code != 0 {
		t.Errorf("a graceful stop exited %d:\n%s", code, p.output())
	}
	if !strings.Contains(p.output(), "tunnel closed, bye") || !strings.Contains(p.output(), "access-key=***") {
		t.Errorf("SC was not drained, or its log not masked:\n%s", p.output())
	}
	testenv.AssertNoTunnel(t, eng, tunnel)
}

func TestBinaryInvalidSettings(t *testing.T) {
	skipShort(t)
	p := startBinary(t, "PLUGIN_REGION=mars", "PLUGIN_READY_TIMEOUT=forever", "PLUGIN_TUNNEL_NAME=bad-"+testenv.Random(6))
	if code := p.wait(t); code != 2 {
		t.Errorf("exit code %d, want 2", code)
	}
	lines := bufio.NewScanner(strings.NewReader(p.output()))
	var got []string
	for lines.Scan() {
		got = append(got, lines.Text())
	}
	want := []string{
		`drone-sauce-connect: invalid setting region (PLUGIN_REGION): "mars" is not a Sauce Labs region; use us-west, us-east or eu-central`,
		`invalid setting ready_timeout (PLUGIN_READY_TIMEOUT): "forever" is not a positive duration; use e.g. 90s, 3m or 1h`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestActBorrowedNamespace runs the plugin as act runs a container action:
// in the job container's network namespace (network_mode container:<id>),
// here with the job container on a network of its own (act's --network, or
// a job with services), which act_test.go's real act runs do not cover.
// The plugin must follow the namespace to the job container, attach SC to
// the job's network with the alias, and a step sharing the job container's
// namespace must reach http://sauce-connect:8032.
func TestActBorrowedNamespace(t *testing.T) {
	skipShort(t)
	ctx := context.Background()
	d := newDrone(t) // only for its network and cleanup
	job, err := eng.CreateContainer(ctx, engine.ContainerSpec{
		Name: d.net + "-job", Image: standin, Cmd: []string{"run"}, Labels: testenv.Labels,
		Env: []engine.EnvVar{{Name: "SAUCE_USERNAME", Value: "x"}, {Name: "SAUCE_ACCESS_KEY", Value: "x"}, {Name: "SAUCE_REGION", Value: "us-west"},
			{Name: "SAUCE_TUNNEL_NAME", Value: "job"}, {Name: "SAUCE_STANDIN_MODE", Value: "never-ready"}},
		Networks: []engine.NetworkAttachment{{Network: d.net, Aliases: []string{"job"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	d.steps = append(d.steps, job)
	if err := eng.StartContainer(ctx, job); err != nil {
		t.Fatal(err)
	}
	runID := testenv.Random(8)
	d.tunnel = "acme-web-" + runID + "-1-test"
	gh := pluginEnv("GITHUB_ACTIONS", "true", "GITHUB_REPOSITORY", "acme/web", "GITHUB_RUN_ID", runID, "GITHUB_RUN_ATTEMPT", "1",
		"GITHUB_JOB", "test", "PLUGIN_API_HOST_PORT", "0")
	start := step(t, "act action", engine.ContainerSpec{Name: "act-" + runID, Image: pluginImage, Env: gh,
		Mounts: []engine.Mount{testenv.Socket}, NetworkMode: "container:" + job, AutoRemove: true})
	if !strings.Contains(start.Logs, "API for container steps: http://sauce-connect:8032") {
		t.Errorf("SC did not join the job's network with the alias:\n%s", start.Logs)
	}
	step(t, "run step in the job's namespace", engine.ContainerSpec{Name: "act-run-" + runID, Image: standin, Cmd: []string{"ready"},
		Env: []engine.EnvVar{{Name: "SAUCE_API_ADDRESS", Value: "sauce-connect:8032"}}, NetworkMode: "container:" + job, AutoRemove: true})
	step(t, "stop", engine.ContainerSpec{Name: "act-stop-" + runID, Image: pluginImage, Env: append(gh, engine.EnvVar{Name: "PLUGIN_ACTION", Value: "stop"}),
		Mounts: []engine.Mount{testenv.Socket}, NetworkMode: "container:" + job, AutoRemove: true})
}

// TestPluginInHostNetworkMode runs the plugin image in the host's network
// namespace (a Drone step with network_mode: host): SC's API is published
// on 127.0.0.1 and a host step reaches it there.
func TestPluginInHostNetworkMode(t *testing.T) {
	skipShort(t)
	tunnel := "hostnet-" + testenv.Random(8)
	env := pluginEnv("PLUGIN_TUNNEL_NAME", tunnel, "PLUGIN_API_HOST_PORT", "0", "DRONE", "true")
	start := step(t, "start", engine.ContainerSpec{Name: tunnel + "-start", Image: pluginImage, Env: env,
		Mounts: []engine.Mount{testenv.Socket}, NetworkMode: "host", AutoRemove: true})
	m := hostAPI.FindStringSubmatch(start.Logs)
	if m == nil {
		t.Fatalf("no host URL:\n%s", start.Logs)
	}
	if code := testenv.Get(t, m[1]+"/readyz"); code != 200 {
		t.Errorf("a host step gets %d", code)
	}
	step(t, "stop", engine.ContainerSpec{Name: tunnel + "-stop", Image: pluginImage, Env: append(env, engine.EnvVar{Name: "PLUGIN_ACTION", Value: "stop"}),
		Mounts: []engine.Mount{testenv.Socket}, NetworkMode: "host", AutoRemove: true})
	testenv.AssertNoTunnel(t, eng, tunnel)
}

// TestHostNetworkModeServesTheAPIOnAPIBindOnly: in the host's network SC's
// API (with /configz and /metrics) listens on api_bind, not on every host
// address, and on a free port when api_host_port is 0.
func TestHostNetworkModeServesTheAPIOnAPIBindOnly(t *testing.T) {
	skipShort(t)
	tunnel := "hostmode-" + testenv.Random(8)
	p := startBinary(t, "PLUGIN_TUNNEL_NAME="+tunnel, "PLUGIN_NETWORK_MODE=host", "PLUGIN_DEBUG=true")
	if code := p.wait(t); code != 0 {
		t.Fatalf("start exited %d:\n%s", code, p.output())
	}
	m := hostAPI.FindStringSubmatch(p.output())
	if m == nil || !regexp.MustCompile(`api server listening on unix:/tmp/sc.sock, tcp:127\.0\.0\.1:\d+\n`).MatchString(p.output()) {
		t.Errorf("SC's API does not listen on 127.0.0.1 alone:\n%s", p.output())
	}
	if m != nil && testenv.Get(t, m[1]+"/readyz") != 200 {
		t.Errorf("a host step cannot reach %s", m[1])
	}
	stop := startBinary(t, "PLUGIN_TUNNEL_NAME="+tunnel, "PLUGIN_ACTION=stop")
	if code := stop.wait(t); code != 0 {
		t.Errorf("stop exited %d:\n%s", code, stop.output())
	}
	testenv.AssertNoTunnel(t, eng, tunnel)
}
