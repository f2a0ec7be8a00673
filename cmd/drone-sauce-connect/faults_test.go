package main_test

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/internal/testenv"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

// fault is one row of the fault matrix: a way things go wrong, what the
// plugin must answer (its exit code), and what it must never do (leave a
// container or a network, or print the access key).
type fault struct {
	name string
	want int
	run  func(t *testing.T, f *faultRun)
}

// faultRun is what one row did and saw.
type faultRun struct {
	tunnel  string
	network string
	code    int
	out     strings.Builder
}

func (f *faultRun) binary(t *testing.T, env ...string) int {
	// No Sauce REST API here (offlineREST): its warning would head every
	// row's lines; the rows that need Sauce's view set their own.
	p := startBinary(t, append([]string{"PLUGIN_TUNNEL_NAME=" + f.tunnel, "PLUGIN_REST_CONFIRM=false"}, env...)...)
	code := p.wait(t)
	f.out.WriteString(p.output())
	return code
}

type faultResult struct {
	name, firstError     string
	code, want           int
	containers, networks int
	keyShown             int
}

// neverReadyTunnel starts an SC container of the row's tunnel, as the
// plugin labels one (plus labels), that never becomes ready.
func (f *faultRun) neverReadyTunnel(t *testing.T, prefix string, labels map[string]string) {
	t.Helper()
	l := map[string]string{plugin.LabelManaged: "true", plugin.LabelTunnel: f.tunnel, plugin.LabelRole: plugin.RoleTunnel}
	maps.Copy(l, labels)
	id, err := eng.CreateContainer(context.Background(), engine.ContainerSpec{
		Name: prefix + f.tunnel, Image: standin, Cmd: []string{"run"}, Labels: l,
		Env: []engine.EnvVar{{Name: "SAUCE_USERNAME", Value: "x"}, {Name: "SAUCE_ACCESS_KEY", Value: "x"}, {Name: "SAUCE_REGION", Value: "us-west"},
			{Name: "SAUCE_TUNNEL_NAME", Value: f.tunnel}, {Name: "SAUCE_STANDIN_MODE", Value: "never-ready"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.StartContainer(context.Background(), id); err != nil {
		t.Fatal(err)
	}
}

// TestFaults drives the real plugin binary and image through the fault
// matrix against the real engine and prints the table (make faults).
func TestFaults(t *testing.T) {
	skipShort(t)
	var mu sync.Mutex
	var results []faultResult
	t.Run("matrix", func(t *testing.T) {
		for _, row := range faults() {
			t.Run(strings.ReplaceAll(row.name, " ", "_"), func(t *testing.T) {
				t.Parallel()
				f := &faultRun{tunnel: "fault-" + testenv.Random(8)}
				row.run(t, f)
				r := faultResult{name: row.name, want: row.want, code: f.code, firstError: firstError(f.out.String())}
				r.containers, r.networks = leftovers(t, f)
				r.keyShown = strings.Count(f.out.String(), accessKey)
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
				if r.code != r.want || r.containers != 0 || r.networks != 0 || r.keyShown != 0 {
					t.Errorf("exit %d (want %d), %d containers and %d networks left, key shown %d times; output:\n%s",
						r.code, r.want, r.containers, r.networks, r.keyShown, f.out.String())
				}
			})
		}
	})
	sort.Slice(results, func(i, j int) bool { return results[i].name < results[j].name })
	var b strings.Builder
	fmt.Fprintf(&b, "\n| fault | exit | first error line | containers left | networks left | key shown |\n|---|---|---|---|---|---|\n")
	for _, r := range results {
		fmt.Fprintf(&b, "| %s | %d | %s | %d | %d | %d |\n", r.name, r.code, r.firstError, r.containers, r.networks, r.keyShown)
	}
	t.Log(b.String())
	if path := os.Getenv("FAULTS_TABLE"); path != "" {
		_ = os.WriteFile(path, []byte(b.String()), 0o644)
	}
}

// firstError is the first line the plugin reported as an error or warning.
func firstError(out string) string {
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "drone-sauce-connect: ") || strings.HasPrefix(line, "warning: ") {
			if len(line) > 160 {
				line = line[:157] + "..."
			}
			return "`" + strings.ReplaceAll(line, "|", "\\|") + "`"
		}
	}
	return "—"
}

// leftovers counts what the row left on the engine, then removes it.
func leftovers(t *testing.T, f *faultRun) (containers, networks int) {
	ctx := context.Background()
	found, err := eng.ListContainers(ctx, map[string]string{plugin.LabelTunnel: f.tunnel})
	if err != nil {
		t.Fatal(err)
	}
	containers = len(found)
	testenv.RemoveTunnel(eng, f.tunnel)
	if f.network != "" {
		if _, err := eng.InspectNetwork(ctx, f.network); err == nil {
			networks = 1
			_ = eng.RemoveNetwork(ctx, f.network)
		}
	}
	return containers, networks
}

func faults() []fault {
	return []fault{
		{"missing credentials", plugin.ExitSettings, func(t *testing.T, f *faultRun) {
			f.code = f.binary(t, "PLUGIN_USERNAME=", "PLUGIN_ACCESS_KEY=", "SAUCE_USERNAME=", "SAUCE_ACCESS_KEY=")
		}},
		{"empty access key", plugin.ExitSettings, func(t *testing.T, f *faultRun) {
			f.code = f.binary(t, "PLUGIN_ACCESS_KEY=  ", "SAUCE_ACCESS_KEY=")
		}},
		{"invalid region", plugin.ExitSettings, func(t *testing.T, f *faultRun) {
			f.code = f.binary(t, "PLUGIN_REGION=ap-southeast")
		}},
		{"invalid duration", plugin.ExitSettings, func(t *testing.T, f *faultRun) {
			f.code = f.binary(t, "PLUGIN_READY_TIMEOUT=3 minutes")
		}},
		{"unknown action", plugin.ExitSettings, func(t *testing.T, f *faultRun) {
			f.code = f.binary(t, "PLUGIN_ACTION=open")
		}},
		{"access key attached to a short flag in sc_args", plugin.ExitSettings, func(t *testing.T, f *faultRun) {
			f.code = f.binary(t, "PLUGIN_SC_ARGS=-kOTHER-KEY-4711")
			if strings.Contains(f.out.String(), "OTHER-KEY-4711") {
				t.Error("the value of an owned option was shown")
			}
		}},
		{"tunnel renamed through sc_args", plugin.ExitSettings, func(t *testing.T, f *faultRun) {
			f.code = f.binary(t, "PLUGIN_SC_ARGS=--log-http=api:url -iother")
		}},
		{"an unclosed quote in sc_args", plugin.ExitSettings, func(t *testing.T, f *faultRun) {
			f.code = f.binary(t, `PLUGIN_SC_ARGS=--header "Authorization: Bearer x`)
		}},
		{"credentials in rest_url", plugin.ExitSettings, func(t *testing.T, f *faultRun) {
			f.code = f.binary(t, "PLUGIN_REST_URL=https://gw:REST-PASS-5@api.example")
			if strings.Contains(f.out.String(), "REST-PASS-5") {
				t.Error("rest_url's password was shown")
			}
		}},
		{"max_lifetime shorter than ready_timeout", plugin.ExitSettings, func(t *testing.T, f *faultRun) {
			f.code = f.binary(t, "PLUGIN_MAX_LIFETIME=1m")
		}},
		{"stop_timeout under a second", plugin.ExitSettings, func(t *testing.T, f *faultRun) {
			f.code = f.binary(t, "PLUGIN_STOP_TIMEOUT=500ms")
		}},
		{"a bare number of seconds too large", plugin.ExitSettings, func(t *testing.T, f *faultRun) {
			f.code = f.binary(t, "PLUGIN_READY_TIMEOUT=18446744074")
		}},
		{"rest_confirm not a boolean", plugin.ExitSettings, func(t *testing.T, f *faultRun) {
			f.code = f.binary(t, "PLUGIN_REST_CONFIRM=maybe")
		}},
		{"DOCKER_HOST unreachable", plugin.ExitEngine, func(t *testing.T, f *faultRun) {
			f.code = f.binary(t, "DOCKER_HOST=unix://"+filepath.Join(t.TempDir(), "no.sock"))
			if !strings.Contains(f.out.String(), "Drone: a host volume /var/run/docker.sock") {
				t.Error("the message does not say how to mount the socket")
			}
		}},
		{"no Docker socket in the plugin container", plugin.ExitEngine, func(t *testing.T, f *faultRun) {
			ran, err := testenv.RunContainer(context.Background(), eng, engine.ContainerSpec{
				Name: f.tunnel, Image: pluginImage, AutoRemove: true,
				Env: pluginEnv("PLUGIN_TUNNEL_NAME", f.tunnel, "DRONE", "true"),
			}, time.Minute, false)
			if err != nil {
				t.Fatal(err)
			}
			f.code = ran.ExitCode
			f.out.WriteString(ran.Logs)
		}},
		{"engine API too old (simulated)", plugin.ExitEngine, func(t *testing.T, f *faultRun) {
			sock := oldEngine(t, "1.38")
			f.code = f.binary(t, "DOCKER_HOST=unix://"+sock)
		}},
		{"engine fails every create (500, retried 10 s)", plugin.ExitFailure, func(t *testing.T, f *faultRun) {
			proxy := testenv.NewEngineProxy(t, &testenv.Fault{Method: "POST", Path: `^/containers/create$`, Times: 1000, Status: 500})
			f.code = f.binary(t, "DOCKER_HOST=unix://"+proxy.Socket)
		}},
		{"engine drops the connection of one start and one inspect", plugin.ExitOK, func(t *testing.T, f *faultRun) {
			proxy := testenv.NewEngineProxy(t,
				&testenv.Fault{Method: "POST", Path: `^/containers/[^/]+/start$`, Times: 1, Drop: true},
				&testenv.Fault{Method: "GET", Path: `^/containers/[^/]+/json$`, Times: 1, Drop: true})
			via := "DOCKER_HOST=unix://" + proxy.Socket
			if f.code = f.binary(t, via); f.code == plugin.ExitOK {
				f.code = f.binary(t, via, "PLUGIN_ACTION=stop")
			}
		}},
		{"image missing with pull never", plugin.ExitFailure, func(t *testing.T, f *faultRun) {
			f.code = f.binary(t, "PLUGIN_IMAGE=dsc-missing:"+testenv.Random(6))
		}},
		{"pull failing", plugin.ExitFailure, func(t *testing.T, f *faultRun) {
			f.code = f.binary(t, "PLUGIN_IMAGE=127.0.0.1:1/sauce-connect:5", "PLUGIN_PULL=always",
				"PLUGIN_REGISTRY_USERNAME=ci", "PLUGIN_REGISTRY_PASSWORD="+accessKey)
		}},
		{"bad credentials", plugin.ExitCredentials, func(t *testing.T, f *faultRun) {
			f.code = f.binary(t, `PLUGIN_ENV={"SAUCE_STANDIN_MODE":"bad-credentials","SAUCE_STANDIN_LEAK_KEY":"true"}`)
			if strings.Count(f.out.String(), "+ docker run") != 1 {
				t.Error("bad credentials were retried")
			}
		}},
		{"never ready", plugin.ExitTimeout, func(t *testing.T, f *faultRun) {
			f.code = f.binary(t, `PLUGIN_ENV={"SAUCE_STANDIN_MODE":"never-ready"}`, "PLUGIN_READY_TIMEOUT=2s")
		}},
		{"crash after ready in run mode", plugin.ExitFailure, func(t *testing.T, f *faultRun) {
			f.code = f.binary(t, "PLUGIN_ACTION=run", `PLUGIN_ENV={"SAUCE_STANDIN_MODE":"crash-after-ready","SAUCE_STANDIN_CRASH_AFTER":"300ms"}`)
		}},
		{"SIGTERM during the wait", 128 + int(syscall.SIGTERM), func(t *testing.T, f *faultRun) {
			f.code = f.signalDuringWait(t, syscall.SIGTERM)
		}},
		{"SIGINT during the wait", 128 + int(syscall.SIGINT), func(t *testing.T, f *faultRun) {
			f.code = f.signalDuringWait(t, syscall.SIGINT)
		}},
		{"plugin container killed -9 mid-start", 137, func(t *testing.T, f *faultRun) {
			f.killedMidStart(t)
		}},
		{"name clash with a foreign container", plugin.ExitFailure, func(t *testing.T, f *faultRun) {
			name := "foreign-" + f.tunnel
			id, err := eng.CreateContainer(context.Background(), engine.ContainerSpec{Name: name, Image: standin, Cmd: []string{"version"}, Labels: testenv.Labels})
			if err != nil {
				t.Fatal(err)
			}
			defer eng.RemoveContainer(context.Background(), id)
			f.code = f.binary(t, "PLUGIN_CONTAINER_NAME="+name)
		}},
		{"host port taken", plugin.ExitFailure, func(t *testing.T, f *faultRun) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			f.code = f.binary(t, fmt.Sprintf("PLUGIN_API_HOST_PORT=%d", l.Addr().(*net.TCPAddr).Port))
		}},
		{"second start of a running tunnel", plugin.ExitOK, func(t *testing.T, f *faultRun) {
			if code := f.binary(t); code != 0 {
				t.Fatalf("first start exited %d", code)
			}
			f.code = f.binary(t)
			if !strings.Contains(f.out.String(), "reusing it") {
				t.Error("the second start did not reuse the tunnel")
			}
			if found, _ := eng.ListContainers(context.Background(), map[string]string{plugin.LabelTunnel: f.tunnel}); len(found) != 1 {
				t.Errorf("%d containers for one tunnel name", len(found))
			}
			if code := f.binary(t, "PLUGIN_ACTION=stop"); code != 0 {
				t.Errorf("stop exited %d", code)
			}
		}},
		{"stop of nothing", plugin.ExitOK, func(t *testing.T, f *faultRun) {
			f.code = f.binary(t, "PLUGIN_ACTION=stop")
		}},
		{"SC prints the access key", plugin.ExitOK, func(t *testing.T, f *faultRun) {
			f.code = f.binary(t, "PLUGIN_DEBUG=true", `PLUGIN_ENV={"SAUCE_STANDIN_LEAK_KEY":"true"}`, "PLUGIN_LOGS_FILE="+filepath.Join(t.TempDir(), "sc.log"))
			if !strings.Contains(f.out.String(), "access-key=***") {
				t.Error("SC's log line with the key was not shown masked")
			}
			if code := f.binary(t, "PLUGIN_ACTION=stop"); code != 0 {
				t.Errorf("stop exited %d", code)
			}
		}},
		{"stop step that knows no secret", plugin.ExitOK, func(t *testing.T, f *faultRun) {
			logs := filepath.Join(t.TempDir(), "sc.log")
			if code := f.binary(t, `PLUGIN_ENV={"SAUCE_STANDIN_LEAK_KEY":"true"}`); code != 0 {
				t.Fatalf("start exited %d", code)
			}
			// As the README's Drone stop step: action stop, no credentials.
			f.code = f.binary(t, "PLUGIN_ACTION=stop", "PLUGIN_USERNAME=", "PLUGIN_ACCESS_KEY=", "SAUCE_ACCESS_KEY=", "PLUGIN_LOGS_FILE="+logs)
			saved, _ := os.ReadFile(logs)
			f.out.Write(saved)
			if !strings.Contains(string(saved), "access-key=***") || !strings.Contains(f.out.String(), "access-key=***") {
				t.Error("SC's log line with the key is not in the output and logs_file, masked")
			}
		}},
		{"access key with a trailing newline", plugin.ExitOK, func(t *testing.T, f *faultRun) {
			f.code = f.binary(t, "PLUGIN_ACCESS_KEY="+accessKey+"\n", "PLUGIN_DEBUG=true", `PLUGIN_ENV={"SAUCE_STANDIN_LEAK_KEY":"true"}`)
			if code := f.binary(t, "PLUGIN_ACTION=stop"); code != 0 {
				t.Errorf("stop exited %d", code)
			}
		}},
		{"secrets in env and sc_args", plugin.ExitOK, func(t *testing.T, f *faultRun) {
			// The API wants basic auth: the plugin's probes must send it.
			f.code = f.binary(t, "PLUGIN_DEBUG=true", `PLUGIN_ENV={"SAUCE_API_BASIC_AUTH":"user:hunter2pass","SAUCE_STANDIN_LEAK_KEY":"true"}`,
				`PLUGIN_SC_ARGS=["--auth", "carol:authpass3@upstream.example:3128"]`)
			if code := f.binary(t, "PLUGIN_ACTION=stop", "PLUGIN_ENV=", "PLUGIN_SC_ARGS="); code != 0 {
				t.Errorf("stop exited %d", code)
			}
			for _, secret := range []string{"hunter2pass", "authpass3"} {
				if n := strings.Count(f.out.String(), secret); n != 0 {
					t.Errorf("%s shown %d times", secret, n)
				}
			}
			if !strings.Contains(f.out.String(), "api-basic-auth=***") {
				t.Error("SC's log line with the API credentials is not shown masked")
			}
		}},
		{"env overriding the API address", plugin.ExitSettings, func(t *testing.T, f *faultRun) {
			f.code = f.binary(t, `PLUGIN_ENV={"SAUCE_API_ADDRESS":":9999"}`)
		}},
		{"region missing", plugin.ExitSettings, func(t *testing.T, f *faultRun) {
			f.code = f.binary(t, "PLUGIN_REGION=")
		}},
		{"config_file conflicting with a setting", plugin.ExitSettings, func(t *testing.T, f *faultRun) {
			file := filepath.Join(t.TempDir(), "sc.yaml")
			if err := os.WriteFile(file, []byte("region: eu-central\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			f.code = f.binary(t, "PLUGIN_CONFIG_FILE="+file)
		}},
		{"config_file setting the region", plugin.ExitOK, func(t *testing.T, f *faultRun) {
			file := filepath.Join(t.TempDir(), "sc.yaml")
			if err := os.WriteFile(file, []byte("region: eu-central\nlog-level: debug\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			f.code = f.binary(t, "PLUGIN_REGION=", "PLUGIN_CONFIG_FILE="+file, "PLUGIN_DEBUG=true")
			if !strings.Contains(f.out.String(), "region=eu-central") || !strings.Contains(f.out.String(), "is up in region eu-central") {
				t.Error("SC did not run in the file's region")
			}
			if code := f.binary(t, "PLUGIN_ACTION=stop"); code != 0 {
				t.Errorf("stop exited %d", code)
			}
		}},
		{"sc_args flag SC does not know", plugin.ExitFailure, func(t *testing.T, f *faultRun) {
			f.code = f.binary(t, "PLUGIN_SC_ARGS=--no-such-flag=1")
			if strings.Count(f.out.String(), "+ docker run") != 1 || !strings.Contains(f.out.String(), "unknown flag: --no-such-flag") {
				t.Error("a refused configuration was retried, or SC's refusal not shown")
			}
		}},
		{"tunnel limit reached", plugin.ExitFailure, func(t *testing.T, f *faultRun) {
			f.code = f.binary(t, `PLUGIN_ENV={"SAUCE_STANDIN_MODE":"tunnel-limit"}`)
			if strings.Count(f.out.String(), "+ docker run") != 1 || !strings.Contains(f.out.String(), "https://app.saucelabs.com/tunnels") {
				t.Error("the tunnel limit was retried, or the message does not say how to find leaked tunnels")
			}
		}},
		{"stale never-ready tunnel of the same name", plugin.ExitOK, func(t *testing.T, f *faultRun) {
			// Left by a run that died long ago: no ready-by label, never ready.
			f.neverReadyTunnel(t, "stale-", nil)
			// The stale one may not eat the new start's ready_timeout.
			f.code = f.binary(t, "PLUGIN_READY_TIMEOUT=12s")
			if !strings.Contains(f.out.String(), "replacing it") {
				t.Error("the stale tunnel was not replaced")
			}
			if code := f.binary(t, "PLUGIN_ACTION=stop"); code != 0 {
				t.Errorf("stop exited %d", code)
			}
		}},
		{"never-ready tunnel of another start, within its ready_timeout", plugin.ExitOK, func(t *testing.T, f *faultRun) {
			// Left by a start killed mid-start: its ready-by label says it
			// may still come up, but it never does; and it is past this
			// start's own ready_timeout.
			readyBy := time.Now().Add(6 * time.Second)
			f.neverReadyTunnel(t, "young-", map[string]string{plugin.LabelReadyBy: strconv.FormatInt(readyBy.Unix(), 10)})
			// Its wait is bounded by its ready-by, and the replacement then
			// has a ready_timeout of its own, not what is left of this one's.
			began := time.Now()
			f.code = f.binary(t, "PLUGIN_READY_TIMEOUT=4s")
			out := f.out.String()
			if !strings.Contains(out, "did not become ready by its ready_timeout") || !strings.Contains(out, "with its own ready_timeout (4s)") {
				t.Error("the log does not say the other start's tunnel was replaced and the new one got its own ready_timeout")
			}
			if took := time.Since(began); took < 3500*time.Millisecond {
				t.Errorf("the start ended after %s: it did not wait for the other start's tunnel", took)
			}
			if code := f.binary(t, "PLUGIN_ACTION=stop"); code != 0 {
				t.Errorf("stop exited %d", code)
			}
		}},
		{"four starts of one tunnel at once", plugin.ExitOK, func(t *testing.T, f *faultRun) {
			var wg sync.WaitGroup
			var mu sync.Mutex
			codes := []int{}
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					p := startBinary(t, "PLUGIN_TUNNEL_NAME="+f.tunnel)
					code := p.wait(t)
					mu.Lock()
					defer mu.Unlock()
					codes = append(codes, code)
					f.out.WriteString(p.output())
				}()
			}
			wg.Wait()
			for _, c := range codes {
				f.code = max(f.code, c)
			}
			if found, _ := eng.ListContainers(context.Background(), map[string]string{plugin.LabelTunnel: f.tunnel, plugin.LabelRole: plugin.RoleTunnel}); len(found) != 1 {
				t.Errorf("%d SC containers for one tunnel name", len(found))
			}
			if code := f.binary(t, "PLUGIN_ACTION=stop"); code != 0 {
				t.Errorf("stop exited %d", code)
			}
		}},
		{"socket the step may not use", plugin.ExitEngine, func(t *testing.T, f *faultRun) {
			// Not the engine's own socket, whose mode and group differ from
			// machine to machine: a socket in front of the engine that only
			// whoever runs the test may use (0600), mounted into a step
			// that runs as nobody, so it is refused whoever runs the suite.
			sock := testenv.NewEngineProxy(t).Socket
			if err := os.Chmod(sock, 0o600); err != nil {
				t.Fatal(err)
			}
			// Should the plugin get through all the same, it starts a tunnel:
			// counted as left behind, then removed.
			t.Cleanup(func() { testenv.RemoveTunnel(eng, f.tunnel) })
			ran, err := testenv.RunContainer(context.Background(), eng, engine.ContainerSpec{
				Name: f.tunnel, Image: pluginImage, AutoRemove: true, User: "65534:65534",
				Env: pluginEnv("PLUGIN_TUNNEL_NAME", f.tunnel, "DRONE", "true"), Mounts: []engine.Mount{{Source: sock, Target: "/var/run/docker.sock"}},
			}, time.Minute, false)
			if err != nil {
				t.Fatal(err)
			}
			f.code = ran.ExitCode
			f.out.WriteString(ran.Logs)
			if !strings.Contains(ran.Logs, "this step runs as uid 65534") || !strings.Contains(ran.Logs, fmt.Sprintf("it allows uid %d", os.Getuid())) ||
				strings.Contains(ran.Logs, "mount the Docker socket") {
				t.Error("a socket the step may not use was reported as a missing one")
			}
		}},
		{"slow drain longer than stop_timeout", plugin.ExitOK, func(t *testing.T, f *faultRun) {
			if code := f.binary(t, `PLUGIN_ENV={"SAUCE_STANDIN_DRAIN":"30s"}`); code != 0 {
				t.Fatalf("start exited %d", code)
			}
			f.code = f.binary(t, "PLUGIN_ACTION=stop", "PLUGIN_STOP_TIMEOUT=1s")
			if !strings.Contains(f.out.String(), "did not finish draining within stop_timeout (1s) and was killed") {
				t.Error("no warning that SC was killed")
			}
		}},
	}
}

func (f *faultRun) signalDuringWait(t *testing.T, sig syscall.Signal) int {
	p := startBinary(t, "PLUGIN_TUNNEL_NAME="+f.tunnel, `PLUGIN_ENV={"SAUCE_STANDIN_MODE":"never-ready"}`)
	p.waitFor(t, "+ docker run")
	time.Sleep(300 * time.Millisecond)
	_ = p.cmd.Process.Signal(sig)
	code := p.wait(t)
	f.out.WriteString(p.output())
	return code
}

// killedMidStart kills the plugin's step container -9 under drone exec
// while SC is coming up; the watchdog and the runner's teardown clean up.
func (f *faultRun) killedMidStart(t *testing.T) {
	b, code := killMidStart(t, false)
	f.code = code
	f.out.WriteString(b.out.String())
	b.assertClean()
	f.tunnel = "0-" + b.name
}

// oldEngine serves a fake Docker engine on a unix socket that reports the
// given API version, to prove an engine too old gets a clear error.
func oldEngine(t *testing.T, version string) string {
	sock := filepath.Join(t.TempDir(), "old.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", version)
		w.Header().Set("Docker-Experimental", "false")
		if strings.HasSuffix(r.URL.Path, "/_ping") {
			_, _ = w.Write([]byte("OK"))
			return
		}
		http.Error(w, `{"message":"client version is too new"}`, http.StatusBadRequest)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return sock
}
