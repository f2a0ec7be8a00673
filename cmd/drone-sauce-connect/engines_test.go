package main_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/internal/testenv"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

// The engine tier: a second, real dockerd started by the tests (its own
// data-root, exec-root, pidfile and bridge) serving TCP with --tlsverify
// and certificates made with crypto/x509. It plays every engine a pipeline
// may hand the plugin besides the local socket: a remote engine, a
// docker:dind service, an engine on another socket path.
var (
	dockerdOnce sync.Once
	dockerd     *testenv.Dockerd
	dockerdErr  error
)

// secondEngine starts the second engine once for the package (stopped in
// TestMain) and connects to it through its socket; it skips the test, or
// fails it under CI=true, when no second engine can run here.
func secondEngine(t *testing.T) (*testenv.Dockerd, *engine.Engine) {
	t.Helper()
	dockerdOnce.Do(func() { dockerd, dockerdErr = testenv.StartDockerd(pluginImage, standin) })
	if dockerdErr != nil {
		testenv.Missing(t, fmt.Sprintf("engine tier (TCP, TLS, dind): no second docker engine: %v", dockerdErr))
	}
	e, err := engine.Connect(context.Background(), engine.Access{Host: dockerd.Socket})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return dockerd, e
}

func stopSecondEngine() {
	if dockerd != nil {
		dockerd.Stop()
	}
}

// tlsEnv is the environment of a step that reaches the engine over TLS.
func tlsEnv(host, certs string) []string {
	return []string{"DOCKER_HOST=" + host, "DOCKER_TLS_VERIFY=1", "DOCKER_CERT_PATH=" + certs}
}

// awaitGone waits until no container of the tunnel is left on e.
func awaitGone(t *testing.T, e *engine.Engine, tunnel string, limit time.Duration) time.Duration {
	t.Helper()
	began := time.Now()
	for {
		found, err := e.ListContainers(context.Background(), map[string]string{plugin.LabelTunnel: tunnel})
		if err != nil {
			t.Fatal(err)
		}
		if len(found) == 0 {
			return time.Since(began)
		}
		if time.Since(began) > limit {
			t.Fatalf("%d container(s) of tunnel %s still there after %s: %v", len(found), tunnel, limit, found[0].Names)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestTLSEngineStepWithoutStop: the plugin as a step container of an engine
// it reaches over TCP with TLS (its client certificates mounted, as a
// runner mounts /certs/client), no stop step. Its watchdog reaches the same
// engine the same way, so the runner removing the step ends the tunnel;
// the private key is in no inspect, and the access key in no output.
func TestTLSEngineStepWithoutStop(t *testing.T) {
	skipShort(t)
	d, e := secondEngine(t)
	tunnel := "tls-" + testenv.Random(8)
	t.Cleanup(func() { testenv.RemoveTunnel(e, tunnel) })
	env := pluginEnv("PLUGIN_TUNNEL_NAME", tunnel, "PLUGIN_API_HOST_PORT", "0", "DRONE", "true", "DRONE_BUILD_NUMBER", "7")
	for _, kv := range tlsEnv(d.TCP, "/certs/client") {
		k, v, _ := strings.Cut(kv, "=")
		env = append(env, engine.EnvVar{Name: k, Value: v})
	}
	ran, err := testenv.RunContainer(context.Background(), e, engine.ContainerSpec{
		Name: "step-" + tunnel, Image: pluginImage, NetworkMode: "host", Env: env,
		Mounts: []engine.Mount{{Source: d.ClientCerts, Target: "/certs/client", ReadOnly: true}},
	}, time.Minute, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.RemoveContainer(context.Background(), ran.ID) })
	noKey(t, "the step's log", ran.Logs)
	if ran.ExitCode != 0 || !strings.Contains(ran.Logs, "tunnel "+tunnel+" is up") {
		t.Fatalf("the step exited %d:\n%s", ran.ExitCode, ran.Logs)
	}
	if strings.Contains(ran.Logs, "no watchdog") || strings.Contains(ran.Logs, "watchdog exited") {
		t.Fatalf("the watchdog was not started as it should be:\n%s\nengine log:\n%s", ran.Logs, d.Log())
	}
	dogs, err := e.ListContainers(context.Background(), map[string]string{plugin.LabelTunnel: tunnel, plugin.LabelRole: plugin.RoleWatchdog})
	if err != nil || len(dogs) != 1 || dogs[0].State != "running" {
		t.Fatalf("want one running watchdog on the TLS engine, got %v (%v)", dogs, err)
	}
	all, err := e.ListContainers(context.Background(), map[string]string{plugin.LabelTunnel: tunnel})
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{"inspect", ran.ID}
	for _, c := range all {
		ids = append(ids, c.ID)
	}
	inspect, err := d.Docker(ids...)
	if err != nil {
		t.Fatal(err)
	}
	if secret := keyBody(d.Key); strings.Contains(inspect, secret) {
		t.Fatal("the TLS private key appears in docker inspect")
	}
	if !strings.Contains(inspect, "DOCKER_CERT_PATH=/run/drone-sauce-connect/docker-certs") {
		t.Fatalf("the watchdog was not given its copy of the certificates:\n%s", inspect)
	}

	// The runner's teardown: the step container is removed.
	if err := e.RemoveContainer(context.Background(), ran.ID); err != nil {
		t.Fatal(err)
	}
	took := awaitGone(t, e, tunnel, 20*time.Second)
	t.Logf("tunnel and watchdog gone %s after the step was removed", took.Round(time.Millisecond))
}

// keyBody is the base64 body of a PEM key, what a leak would show.
func keyBody(pem string) string {
	lines := strings.Split(strings.TrimSpace(pem), "\n")
	return strings.Join(lines[1:len(lines)-1], "")
}

var apiOutput = regexp.MustCompile(`(?m)^SAUCE_CONNECT_API=(\S+)$`)

// TestRemoteEngine: the Docker-in-Docker shape. The engine is on another
// host (its bridge address plays a dind service's), so SC runs there, its
// API is published on every address of that host, and the plugin hands
// later steps that host and port, which a step container of the machine's
// own engine reaches. A stop step with the same DOCKER_* removes it.
func TestRemoteEngine(t *testing.T) {
	skipShort(t)
	needBusybox(t)
	d, e := secondEngine(t)
	tunnel := "dind-" + testenv.Random(8)
	t.Cleanup(func() { testenv.RemoveTunnel(e, tunnel) })
	outputs := filepath.Join(t.TempDir(), "output")
	via := tlsEnv(d.Remote, d.ClientCerts)
	start := startBinary(t, append(via, "PLUGIN_TUNNEL_NAME="+tunnel, "DRONE_OUTPUT="+outputs)...)
	if code := start.wait(t); code != 0 {
		t.Fatalf("start exited %d:\n%s", code, start.output())
	}
	if !strings.Contains(start.output(), "SC's API is published on every address there") {
		t.Errorf("the start does not say where the API is published:\n%s", start.output())
	}
	b, _ := os.ReadFile(outputs)
	m := apiOutput.FindStringSubmatch(string(b))
	host := strings.TrimPrefix(d.Remote, "tcp://")
	host = host[:strings.LastIndex(host, ":")]
	if m == nil || !strings.HasPrefix(m[1], "http://"+host+":") {
		t.Fatalf("SAUCE_CONNECT_API is not at the engine's host %s: %q\n%s", host, b, start.output())
	}
	// A later step: a container of the machine's engine, not the remote one.
	ran, err := testenv.RunContainer(context.Background(), eng, engine.ContainerSpec{
		Name: "later-" + tunnel, Image: busybox, Cmd: []string{"wget", "-q", "-O-", m[1] + "/readyz"},
	}, 30*time.Second, false)
	if err != nil || ran.ExitCode != 0 {
		t.Fatalf("a later step could not reach %s/readyz (exit %d, %v):\n%s", m[1], ran.ExitCode, err, ran.Logs)
	}
	stop := startBinary(t, append(via, "PLUGIN_TUNNEL_NAME="+tunnel, "PLUGIN_ACTION=stop")...)
	if code := stop.wait(t); code != 0 {
		t.Fatalf("stop exited %d:\n%s", code, stop.output())
	}
	awaitGone(t, e, tunnel, time.Second)
}

// TestOtherSocketPath: an engine whose socket is not /var/run/docker.sock
// (rootless Docker's /run/user/UID/docker.sock, Podman's): DOCKER_HOST
// names it, the step mounts it there, and the watchdog mounts it at the
// same path and is told so, so the runner removing the step ends the tunnel.
func TestOtherSocketPath(t *testing.T) {
	skipShort(t)
	d, e := secondEngine(t)
	tunnel := "sock-" + testenv.Random(8)
	t.Cleanup(func() { testenv.RemoveTunnel(e, tunnel) })
	const sock = "/run/user/1000/docker.sock"
	ran, err := testenv.RunContainer(context.Background(), e, engine.ContainerSpec{
		Name: "step-" + tunnel, Image: pluginImage,
		Env:    pluginEnv("PLUGIN_TUNNEL_NAME", tunnel, "DRONE", "true", "DOCKER_HOST", "unix://"+sock),
		Mounts: []engine.Mount{{Source: strings.TrimPrefix(d.Socket, "unix://"), Target: sock}},
	}, time.Minute, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.RemoveContainer(context.Background(), ran.ID) })
	if ran.ExitCode != 0 || strings.Contains(ran.Logs, "no watchdog") || strings.Contains(ran.Logs, "watchdog exited") {
		t.Fatalf("the step exited %d, or its watchdog failed:\n%s", ran.ExitCode, ran.Logs)
	}
	if err := e.RemoveContainer(context.Background(), ran.ID); err != nil {
		t.Fatal(err)
	}
	awaitGone(t, e, tunnel, 20*time.Second)
}

// TestBadEngineSettings: what a user gets wrong about DOCKER_* is one line
// naming the variable and the fix, exit 2, and nothing is created.
func TestBadEngineSettings(t *testing.T) {
	skipShort(t)
	d, e := secondEngine(t)
	noKeyDir := filepath.Join(t.TempDir(), "certs")
	if err := os.MkdirAll(noKeyDir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ca.pem", "cert.pem"} {
		b, _ := os.ReadFile(filepath.Join(d.ClientCerts, f))
		if err := os.WriteFile(filepath.Join(noKeyDir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		env  []string
		want string
	}{
		{"cert dir without key.pem", tlsEnv(d.TCP, noKeyDir), "DOCKER_CERT_PATH=" + noKeyDir + " has no readable key.pem"},
		{"a CA that does not match", tlsEnv(d.TCP, d.OtherCA), "presented a certificate that ca.pem in DOCKER_CERT_PATH=" + d.OtherCA + " does not trust"},
		{"tcp:// with no host", []string{"DOCKER_HOST=tcp://"}, "DOCKER_HOST=tcp:// names no host"},
		{"ssh", []string{"DOCKER_HOST=ssh://ci@build-host"}, "ssh:// is not supported"},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			tunnel := "badeng-" + testenv.Random(8)
			p := startBinary(t, append(tc.env, "PLUGIN_TUNNEL_NAME="+tunnel)...)
			code := p.wait(t)
			out := strings.TrimSpace(p.output())
			if code != plugin.ExitSettings || !strings.Contains(out, tc.want) || strings.Count(out, "\n") != 0 {
				t.Errorf("exit %d (want %d), want one line with %q:\n%s", code, plugin.ExitSettings, tc.want, out)
			}
			if strings.Contains(out, keyBody(d.Key)) {
				t.Error("the private key is in the output")
			}
			awaitGone(t, e, tunnel, 0)
			awaitGone(t, eng, tunnel, 0)
		})
	}
}

// TestWatchdogRefusedByTheEngine: the engine (here a socket proxy in front
// of it, as an authorization plugin would) refuses to create the watchdog.
// The start prints one warning naming the cause and what still ends the
// tunnel, and succeeds; the stop step then ends the tunnel.
func TestWatchdogRefusedByTheEngine(t *testing.T) {
	skipShort(t)
	tunnel := "nodog-" + testenv.Random(8)
	t.Cleanup(func() { testenv.RemoveTunnel(eng, tunnel) })
	proxy := testenv.NewEngineProxy(t, &testenv.Fault{Method: "POST", Path: `^/containers/create$`, Query: `name=[^&]*-watchdog`, Times: 1, Status: 403})
	ran, err := testenv.RunContainer(context.Background(), eng, engine.ContainerSpec{
		Name: "step-" + tunnel, Image: pluginImage,
		Env:    pluginEnv("PLUGIN_TUNNEL_NAME", tunnel, "DRONE", "true"),
		Mounts: []engine.Mount{{Source: proxy.Socket, Target: "/var/run/docker.sock"}},
	}, time.Minute, false)
	if err != nil {
		t.Fatal(err)
	}
	noKey(t, "the step's log", ran.Logs)
	if ran.ExitCode != 0 {
		t.Fatalf("a refused watchdog failed the start (exit %d):\n%s", ran.ExitCode, ran.Logs)
	}
	if n := strings.Count(ran.Logs, "no watchdog: "); n != 1 || !strings.Contains(ran.Logs, "403") ||
		!strings.Contains(ran.Logs, "the tunnel is removed by the stop step or when max_lifetime passes") {
		t.Fatalf("want one warning naming the cause and what ends the tunnel:\n%s", ran.Logs)
	}
	if unused := proxy.Unused(); len(unused) > 0 {
		t.Fatalf("the watchdog's create was never refused: %v", unused)
	}
	stop := startBinary(t, "PLUGIN_TUNNEL_NAME="+tunnel, "PLUGIN_ACTION=stop")
	if code := stop.wait(t); code != 0 {
		t.Fatalf("stop exited %d:\n%s", code, stop.output())
	}
	awaitGone(t, eng, tunnel, time.Second)
}
