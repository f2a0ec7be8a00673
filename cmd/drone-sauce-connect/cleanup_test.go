package main_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/internal/testenv"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

// goneWithin is how soon after the runner's teardown nothing may be left.
const goneWithin = 15 * time.Second

// TestPluginKilledWhileWaiting kills the plugin's step container while SC is
// still coming up, under drone exec: with kill -9 (docker rm -f), and with
// docker stop -t 0 (SIGTERM, then SIGKILL while the plugin is in its own
// cleanup). The runner fails the step and tears the build down; nothing of
// it may be left.
func TestPluginKilledWhileWaiting(t *testing.T) {
	skipShort(t)
	for _, how := range []string{"kill-9", "sigterm-then-sigkill"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			b, code := killMidStart(t, how == "kill-9")
			t.Logf("drone exec exited %d", code)
			b.assertClean()
		})
	}
}

// TestMaxLifetimeStopsGracefully lets a tunnel outlive max_lifetime: the
// watchdog must stop SC with SIGTERM (SC exits 0 after draining), not kill it.
// The runner plays no part in this: a step container stands in for it.
func TestMaxLifetimeStopsGracefully(t *testing.T) {
	skipShort(t)
	d := newDrone(t)
	d.run("sauce", d.spec("sauce", "PLUGIN_MAX_LIFETIME", "10s", "PLUGIN_READY_TIMEOUT", "10s"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	events, _ := eng.WatchContainer(ctx, "sauce-connect-"+d.tunnel)
	for {
		select {
		case <-ctx.Done():
			t.Fatal("SC was not stopped at the end of its lifetime")
		case ev := <-events:
			if ev.Action != "die" {
				continue
			}
			if ev.ExitCode != 0 {
				t.Errorf("SC exited %d: it was killed, not stopped gracefully", ev.ExitCode)
			}
			if _, ok := d.waitGone(goneWithin); !ok {
				t.Error("SC or the watchdog remain after the expiry")
			}
			return
		}
	}
}

// TestRmStartIsNotTornDownEarly starts the tunnel from a --rm container (as
// GitHub's hosted runner and `docker run --rm` do; that runner cannot run
// here): the plugin's container vanishes at once, which must not end the
// tunnel; only its lifetime or a stop does.
func TestRmStartIsNotTornDownEarly(t *testing.T) {
	skipShort(t)
	d := newDrone(t)
	s := d.spec("sauce", "PLUGIN_API_HOST_PORT", "0")
	s.AutoRemove = true
	step(t, "start", s)
	time.Sleep(3 * time.Second)
	if sc, w := d.left(); sc != 1 || w != 1 {
		t.Fatalf("3 s after a --rm start: %d SC, %d watchdogs; want both still running", sc, w)
	}
	stop := d.spec("stop", "PLUGIN_ACTION", "stop")
	stop.AutoRemove = true
	step(t, "stop", stop)
	if sc, w := d.left(); sc != 0 || w != 0 {
		t.Errorf("after stop: %d SC, %d watchdogs", sc, w)
	}
}

// TestSweepRemovesExpiredLeftovers plants an expired leftover (as a crashed
// run leaves one) and another pipeline's live tunnel; a new start must
// remove the first by ID and leave the second alone.
func TestSweepRemovesExpiredLeftovers(t *testing.T) {
	skipShort(t)
	ctx := context.Background()
	plant := func(tunnel string, expires time.Time) string {
		id, err := eng.CreateContainer(ctx, engine.ContainerSpec{
			Name: "sauce-connect-" + tunnel, Image: standin, Cmd: []string{"version"},
			Labels: map[string]string{
				testenv.LabelTest: "true", plugin.LabelManaged: "true", plugin.LabelTunnel: tunnel, plugin.LabelRole: plugin.RoleTunnel,
				plugin.LabelExpires: itoa(expires.Unix()),
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = eng.RemoveContainer(ctx, id) })
		return id
	}
	expired := plant("leftover-"+testenv.Random(6), time.Now().Add(-time.Minute))
	live := plant("live-"+testenv.Random(6), time.Now().Add(time.Hour))
	tunnel := "sweeper-" + testenv.Random(6)
	p := startBinary(t, "PLUGIN_TUNNEL_NAME="+tunnel)
	if code := p.wait(t); code != 0 {
		t.Fatalf("start exited %d:\n%s", code, p.output())
	}
	t.Cleanup(func() { testenv.RemoveTunnel(eng, tunnel) })
	if _, err := eng.InspectContainer(ctx, expired); !engine.IsNotFound(err) {
		t.Errorf("the expired leftover was not removed (%v):\n%s", err, p.output())
	}
	if _, err := eng.InspectContainer(ctx, live); err != nil {
		t.Errorf("another pipeline's live tunnel was touched: %v", err)
	}
	// Which start swept it is not asserted: any concurrent start on the
	// engine may (the sweep is engine-wide by design).
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestWatchdogBackstop: when the runner removes the step with no stop step,
// the watchdog stops SC; if stop_timeout cuts SC's drain short, the
// watchdog deletes the tunnel through Sauce's REST API (here the
// stand-in's) with the credentials it reads from SC's container at that
// moment, none of which is in its own spec; after a drain that finished it
// leaves the tunnel to SC, which closed it itself.
func TestWatchdogBackstop(t *testing.T) {
	skipShort(t)
	api, err := testenv.StartSauceAPI()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.Stop)
	for _, tc := range []struct {
		name, drain string
		want        []string
	}{{"drain finished", "0s", []string{"sc"}}, {"drain cut short", "20s", []string{"plugin"}}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := newDrone(t)
			ran := d.run("sauce", d.spec("sauce", "PLUGIN_STOP_TIMEOUT", "1s", "PLUGIN_REST_URL", api.URL,
				"PLUGIN_ENV", `{"SAUCE_STANDIN_READY_DELAY":"300ms","SAUCE_STANDIN_REST_URL":"`+api.URL+`","SAUCE_STANDIN_DRAIN":"`+tc.drain+`"}`))
			dogs, err := eng.ListContainers(context.Background(), map[string]string{plugin.LabelTunnel: d.tunnel, plugin.LabelRole: plugin.RoleWatchdog})
			if err != nil || len(dogs) != 1 {
				t.Fatalf("%d watchdogs (%v), want 1", len(dogs), err)
			}
			dog, err := eng.InspectContainer(context.Background(), dogs[0].ID)
			if err != nil {
				t.Fatal(err)
			}
			noKey(t, "the watchdog's spec", strings.Join(append(dog.Env, dog.Cmd...), " "))
			if err := eng.RemoveContainer(context.Background(), ran.ID); err != nil {
				t.Fatal(err)
			}
			if _, ok := d.waitGone(goneWithin); !ok {
				t.Fatal("the tunnel outlived its step")
			}
			by, err := api.DeletesOf(d.tunnel)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(by, tc.want) {
				t.Errorf("the tunnel was deleted at Sauce Labs by %v, want %v", by, tc.want)
			}
		})
	}
}
