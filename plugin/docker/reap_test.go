package docker

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"

	"github.com/google/go-cmp/cmp"
	"github.com/sirupsen/logrus"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

// TestTeardownLeavesTheBuildNetworkFirst: when the pipeline is over, SC
// leaves the runner's network before its drain (gaining egress on the
// default bridge), and the network its runner failed to remove goes too.
func TestTeardownLeavesTheBuildNetworkFirst(t *testing.T) {
	f := &fakeEngine{
		inspect: func(id string) (engine.Container, error) {
			return engine.Container{ID: id, NetworkMode: "drone-x"}, nil
		},
		network: func(name string) (engine.Network, error) { return engine.Network{Name: name}, nil },
	}
	w, out := fakeWatchdog(f, WatchdogArgs{Tunnel: "t", Target: "sc", Networks: []string{"drone-x"}})
	if err := w.teardown(context.Background(), "its pipeline step was removed", true); err != nil {
		t.Fatal(err)
	}
	want := "disconnect sc drone-x, connect sc bridge, stop sc, remove sc, remove network drone-x"
	if got := strings.Join(f.calls, ", "); got != want {
		t.Errorf("calls:\n got %s\nwant %s", got, want)
	}
	if !strings.Contains(out.String(), "removed network drone-x, which its pipeline left behind") {
		t.Errorf("output: %s", out.String())
	}

	// At max_lifetime the pipeline may still run: its network stays.
	f.calls = nil
	if err := w.teardown(context.Background(), "max_lifetime reached", false); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.calls, ", "); strings.Contains(got, "remove network") {
		t.Errorf("the network of a live pipeline was removed: %s", got)
	}
}

// TestTeardownWaitsForTheNetworkToEmpty: a network that still has
// containers attached is not removed until they are gone.
func TestTeardownWaitsForTheNetworkToEmpty(t *testing.T) {
	polls := 0
	f := &fakeEngine{
		inspect: func(id string) (engine.Container, error) {
			return engine.Container{ID: id, NetworkMode: "drone-x"}, nil
		},
		network: func(name string) (engine.Network, error) {
			polls++
			if polls < 3 {
				return engine.Network{Name: name, Containers: []string{"service"}}, nil
			}
			return engine.Network{Name: name}, nil
		},
	}
	w, _ := fakeWatchdog(f, WatchdogArgs{Tunnel: "t", Target: "sc", Networks: []string{"drone-x"}})
	if err := w.teardown(context.Background(), "its pipeline step was removed", true); err != nil {
		t.Fatal(err)
	}
	if polls != 3 || !strings.HasSuffix(strings.Join(f.calls, ", "), "remove network drone-x") {
		t.Errorf("%d looks at the network; calls %s", polls, strings.Join(f.calls, ", "))
	}
}

// TestWatchdogThatExitsAtOnceIsOneWarning: the cause is named, and the
// tunnel is left up.
func TestWatchdogThatExitsAtOnceIsOneWarning(t *testing.T) {
	events := make(chan engine.Event, 2)
	events <- engine.Event{Action: "start"}
	events <- engine.Event{Action: "die", ExitCode: 2}
	f := &fakeEngine{
		inspect: func(id string) (engine.Container, error) { return engine.Container{}, notFound{} },
		events:  func(string) <-chan engine.Event { return events },
		logs:    func(string) string { return "watching…\ndrone-sauce-connect: invalid setting stop_timeout\n" },
	}
	p, out := fakeRun(t, f, time.Now())
	self := &engine.Container{ID: "self", ImageID: "sha256:plugin", Mounts: map[string]string{"/var/run/docker.sock": "/var/run/docker.sock"}}
	p.access = engine.Access{Host: "unix:///var/run/docker.sock"}
	w := <-p.launchWatchdog(context.Background(), self, guard{Anchor: "self"}, "tunnel1", time.Now().Add(time.Hour))
	if w == nil {
		t.Fatalf("no watchdog:\n%s", out.String())
	}
	w.check(context.Background(), p)
	want := "the watchdog exited at once with code 2 (drone-sauce-connect: invalid setting stop_timeout); the tunnel is removed by the stop step or when max_lifetime passes"
	if got := out.String(); strings.Count(got, "watchdog exited") != 1 || !strings.Contains(got, want) {
		t.Errorf("output:\n%s\nwant one warning: %s", got, want)
	}
	for _, call := range f.calls {
		if strings.HasSuffix(call, " tunnel1") {
			t.Errorf("the tunnel was touched: %s", strings.Join(f.calls, ", "))
		}
	}
}

// TestWatchdogThatCannotStartIsAWarning: the start goes on without it.
func TestWatchdogThatCannotStartIsAWarning(t *testing.T) {
	f := &fakeEngine{start: func(id string) error {
		if strings.Contains(id, "-watchdog-") {
			return errDenied
		}
		return nil
	}}
	p, out := fakeRun(t, f, time.Now())
	self := &engine.Container{ID: "self", ImageID: "sha256:plugin", Mounts: map[string]string{"/var/run/docker.sock": "/var/run/docker.sock"}}
	p.access = engine.Access{Host: "unix:///var/run/docker.sock"}
	if w := <-p.launchWatchdog(context.Background(), self, guard{}, "sc", time.Now().Add(time.Hour)); w != nil {
		t.Fatal("a watchdog that did not start was handed back")
	}
	if !strings.Contains(out.String(), "no watchdog: permission denied; the tunnel is removed by the stop step") {
		t.Errorf("output: %s", out.String())
	}
	if got := strings.Join(f.calls, ", "); !strings.Contains(got, "remove id-sauce-connect-fake-watchdog") {
		t.Errorf("the failed watchdog was not removed: %s", got)
	}
}

var errDenied = deniedError{}

type deniedError struct{}

func (deniedError) Error() string { return "permission denied" }

func fakeWatchdog(f *fakeEngine, a WatchdogArgs) (*watchdogRun, *bytes.Buffer) {
	var out bytes.Buffer
	log := logrus.New()
	log.SetOutput(&out)
	log.SetFormatter(plugin.LogFormatter("text"))
	return &watchdogRun{args: a, eng: f, log: log.WithField("tunnel", a.Tunnel), masker: plugin.NewMasker()}, &out
}

// TestWatchdogArgsRoundTrip: what the spec passes is what reap reads.
func TestWatchdogArgsRoundTrip(t *testing.T) {
	in := WatchdogArgs{Tunnel: "t", Target: "sc", Anchor: "step", Deadline: time.Unix(1_800_000_000, 0), Networks: []string{"a", "b"},
		StopTimeout: 45 * time.Second, LogFormat: "json"}
	flags := in.Flags()
	if flags[0] != ReapCommand {
		t.Fatalf("flags %q do not start with the command", flags)
	}
	out, err := ParseWatchdogArgs(flags[1:])
	if err != nil || !cmp.Equal(in, out) {
		t.Errorf("got %+v, %v; want %+v", out, err, in)
	}
	if _, err := ParseWatchdogArgs([]string{"--tunnel=t"}); err == nil || plugin.ExitCode(err) != plugin.ExitSettings {
		t.Errorf("a reap without target and deadline: %v", err)
	}
}
