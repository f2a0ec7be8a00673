// Package testenv gives the plugin's integration and end-to-end tests a real
// Docker engine, the stand-in Sauce Connect image and the plugin image, all
// built offline, and checks that tests leave nothing behind.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

// LabelTest marks every container, network and image a test creates itself.
const LabelTest = "io.drone-sauce-connect.test"

// Labels are the labels for objects a test creates.
var Labels = map[string]string{LabelTest: "true"}

// Root is the repository root.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Engine connects to the real engine. Without one the test is skipped,
// except under CI=true, where a missing engine is a failure.
func Engine(tb testing.TB) *engine.Engine {
	tb.Helper()
	e, err := engine.NewEnv(context.Background())
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("CI=true but no docker engine: %v", err)
		}
		tb.Skipf("no docker engine: %v", err)
	}
	tb.Cleanup(func() { _ = e.Close() })
	return e
}

// Random returns n random hex characters.
func Random(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

// Name returns a name unique to this test and run, fit for Docker.
func Name(tb testing.TB) string {
	n := strings.ToLower(tb.Name())
	n = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, n)
	if len(n) > 40 {
		n = n[len(n)-40:]
	}
	return strings.Trim(n, "-") + "-" + Random(6)
}

// GoBuild builds a static binary of pkg (relative to the repo root) into dir.
func GoBuild(pkg, dir, name string) (string, error) {
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./"+pkg)
	cmd.Dir = Root()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return out, nil
}

// BuildImage builds an image tagged tag from a static build of pkg and a
// Dockerfile, through the engine (no registry). It returns a func that
// removes the image.
func BuildImage(pkg, binName, dockerfile, tag string) (func(), error) {
	dir, err := os.MkdirTemp("", "dsc-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if _, err := GoBuild(pkg, dir, binName); err != nil {
		return nil, err
	}
	df, err := os.ReadFile(filepath.Join(Root(), dockerfile))
	if err != nil {
		return nil, err
	}
	// The Dockerfile copies the binary from where `make` puts it; here it sits beside.
	text := strings.ReplaceAll(string(df), "release/linux/amd64/"+binName, binName)
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(text), 0o644); err != nil {
		return nil, err
	}
	return build(dir, tag)
}

// StandinImage builds the stand-in Sauce Connect image as tag.
func StandinImage(tag string) (func(), error) {
	return BuildImage("testdata/sc-standin", "sc", "testdata/sc-standin/Dockerfile", tag)
}

// StandinPlainImage builds the stand-in in the image's other shape: no
// HEALTHCHECK (Sauce documents none for its image, so readiness may not
// rest on one) and a non-root USER (65532, as distroless images run).
func StandinPlainImage(tag string) (func(), error) {
	dir, err := os.MkdirTemp("", "dsc-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if _, err := GoBuild("testdata/sc-standin", dir, "sc"); err != nil {
		return nil, err
	}
	if err := os.Mkdir(filepath.Join(dir, "tmp"), 0o755); err != nil {
		return nil, err
	}
	df := "FROM scratch\nCOPY sc /usr/bin/sc\nCOPY --chown=65532:65532 tmp /tmp\nUSER 65532:65532\nENTRYPOINT [\"/usr/bin/sc\"]\nCMD [\"run\"]\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		return nil, err
	}
	return build(dir, tag)
}

// PluginImage builds the plugin image as tag from docker/Dockerfile.linux.amd64
// as it is, with the build context laid out as `make build` lays it out.
func PluginImage(tag string) (func(), error) {
	dir, err := os.MkdirTemp("", "dsc-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "release", "linux", "amd64", "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return nil, err
	}
	if _, err := GoBuild("cmd/drone-sauce-connect", bin, "drone-sauce-connect"); err != nil {
		return nil, err
	}
	if err := os.Symlink("drone-sauce-connect", filepath.Join(bin, "drone-sauce-connect-post")); err != nil {
		return nil, err
	}
	df, err := os.ReadFile(filepath.Join(Root(), "docker", "Dockerfile.linux.amd64"))
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), df, 0o644); err != nil {
		return nil, err
	}
	return build(dir, tag)
}

// build builds the image in dir and returns a func that removes it.
func build(dir, tag string) (func(), error) {
	if err := BuildDir(dir, tag); err != nil {
		return nil, err
	}
	return func() { RemoveImage(tag) }, nil
}

// RemoveTunnel force-removes every container of a tunnel, as test cleanup.
func RemoveTunnel(e *engine.Engine, tunnel string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	found, _ := e.ListContainers(ctx, map[string]string{"io.drone-sauce-connect.tunnel": tunnel})
	for _, c := range found {
		_ = e.RemoveContainer(ctx, c.ID)
	}
}

// AssertNoTunnel fails when any container of the tunnel remains, after
// removing it so the engine is left clean all the same.
func AssertNoTunnel(tb testing.TB, e *engine.Engine, tunnel string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	found, err := e.ListContainers(ctx, map[string]string{"io.drone-sauce-connect.tunnel": tunnel})
	if err != nil {
		tb.Fatalf("list containers: %v", err)
	}
	if len(found) > 0 {
		RemoveTunnel(e, tunnel)
		tb.Errorf("%d container(s) of tunnel %s were left behind: %v", len(found), tunnel, found[0].Names)
	}
}

// Ran is the result of a container run by RunContainer.
type Ran struct {
	ID       string
	ExitCode int
	Logs     string
}

// RunContainer runs a container to its end, like `docker run`, and returns
// its exit code and log. Unless keep is set (as runners keep step
// containers until the pipeline ends), it removes the container when the
// engine does not (AutoRemove). The container gets the test label.
func RunContainer(ctx context.Context, e *engine.Engine, s engine.ContainerSpec, timeout time.Duration, keep bool) (Ran, error) {
	if s.Labels == nil {
		s.Labels = map[string]string{}
	}
	for k, v := range Labels {
		s.Labels[k] = v
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	events, _ := e.WatchContainer(ctx, s.Name)
	id, err := e.CreateContainer(ctx, s)
	if id != "" && !s.AutoRemove && !keep {
		defer func() {
			rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer rcancel()
			_ = e.RemoveContainer(rctx, id)
		}()
	}
	if err != nil {
		return Ran{}, err
	}
	if err := e.StartContainer(ctx, id); err != nil {
		return Ran{}, err
	}
	logs := &SafeBuffer{}
	logsDone := make(chan struct{})
	go func() {
		defer close(logsDone)
		_ = e.ContainerLogs(ctx, id, engine.LogsOptions{Follow: true}, logs, logs)
	}()
	// The event subscription is made in the background and may come too
	// late for a container that ends at once: its state is polled as well.
	poll := time.NewTicker(250 * time.Millisecond)
	defer poll.Stop()
	finish := func(r Ran) (Ran, error) {
		select {
		case <-logsDone:
		case <-time.After(5 * time.Second):
		}
		r.Logs = logs.String()
		return r, nil
	}
	var ran Ran
	for {
		select {
		case <-ctx.Done():
			return Ran{Logs: logs.String()}, fmt.Errorf("container %s did not finish within %s", s.Name, timeout)
		case <-poll.C:
			c, err := e.InspectContainer(ctx, id)
			switch {
			case s.AutoRemove && ran.ID != "" && engine.IsNotFound(err):
				// Died, then removed by the engine: its destroy event was missed.
			case s.AutoRemove && engine.IsNotFound(err):
				return Ran{Logs: logs.String()}, fmt.Errorf("container %s ended and was removed before its exit code was seen", s.Name)
			case !s.AutoRemove && err == nil && !c.State.Running && c.State.Status != "created":
				ran = Ran{ID: id, ExitCode: c.State.ExitCode}
			default:
				continue
			}
			return finish(ran)
		case ev, ok := <-events:
			if !ok {
				return Ran{Logs: logs.String()}, fmt.Errorf("event stream of %s ended", s.Name)
			}
			switch {
			case ev.Action == "die":
				ran = Ran{ID: id, ExitCode: ev.ExitCode}
				if s.AutoRemove {
					continue // the engine removes it next: wait for that
				}
			case ev.Action == "destroy" && s.AutoRemove:
			default:
				continue
			}
			return finish(ran)
		}
	}
}

// SafeBuffer is a buffer that several goroutines may write and read.
type SafeBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *SafeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SafeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Socket is the bind mount that gives a container the host's Docker engine.
var Socket = engine.Mount{Source: "/var/run/docker.sock", Target: "/var/run/docker.sock"}

// Unavailable reports, from a TestMain, that the engine or control plane the
// tests need is missing: under CI=true that is a failure (1); elsewhere the
// tests that need it are skipped (0).
func Unavailable(what string, err error) int {
	if os.Getenv("CI") == "true" {
		fmt.Fprintf(os.Stderr, "CI=true but no %s: %v\n", what, err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "skipping the tests that need a %s: %v\n", what, err)
	recordSkip(fmt.Sprintf("the tests that need a %s: %v", what, err))
	return 0
}

// Get returns the status of GET url, failing the test when it cannot ask.
func Get(tb testing.TB, url string) int {
	tb.Helper()
	resp, err := http.Get(url)
	if err != nil {
		tb.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
