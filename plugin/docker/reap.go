package docker

import (
	"context"
	"errors"
	"flag"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"

	"github.com/sirupsen/logrus"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/backoff"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

// watchdogPoll paces the watchdog's checks only when an event stream broke;
// otherwise it sleeps on the streams and costs nothing.
const watchdogPoll = 2 * time.Second

// ReapCommand is the binary's subcommand that runs a watchdog.
const ReapCommand = "reap"

// WatchdogArgs are what a watchdog watches. The plugin passes them to its
// watchdog container as the reap command's flags; they are no settings.
type WatchdogArgs struct {
	Tunnel string
	// Target is the SC container.
	Target string
	// Anchor is the container whose removal ends the tunnel ("" when there
	// is no anchor: then only the deadline counts).
	Anchor string
	// Deadline is when the tunnel expires.
	Deadline time.Time
	// Networks are the runner's networks SC joined: SC leaves them first at
	// teardown, and the watchdog removes the ones its runner left behind.
	Networks    []string
	StopTimeout time.Duration
	LogFormat   string
	// RESTURL is rest_url: where the backstop deletes a tunnel SC could
	// not close itself ("" for the region's host).
	RESTURL string
}

// Flags renders the arguments as the reap command's flags.
func (a WatchdogArgs) Flags() []string {
	out := []string{ReapCommand, "--tunnel=" + a.Tunnel, "--target=" + a.Target, "--deadline=" + strconv.FormatInt(a.Deadline.Unix(), 10),
		"--stop-timeout=" + a.StopTimeout.String(), "--log-format=" + a.LogFormat}
	if a.Anchor != "" {
		out = append(out, "--anchor="+a.Anchor)
	}
	if len(a.Networks) > 0 {
		out = append(out, "--networks="+strings.Join(a.Networks, ","))
	}
	if a.RESTURL != "" {
		out = append(out, "--rest-url="+a.RESTURL)
	}
	return out
}

// ParseWatchdogArgs reads the reap command's flags (those after "reap").
func ParseWatchdogArgs(args []string) (WatchdogArgs, error) {
	var a WatchdogArgs
	var deadline int64
	var networks string
	fs := flag.NewFlagSet(ReapCommand, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&a.Tunnel, "tunnel", "", "the tunnel's name")
	fs.StringVar(&a.Target, "target", "", "the SC container")
	fs.StringVar(&a.Anchor, "anchor", "", "the container whose removal ends the tunnel")
	fs.Int64Var(&deadline, "deadline", 0, "when the tunnel expires, in Unix seconds")
	fs.StringVar(&networks, "networks", "", "the runner's networks SC joined, comma-separated")
	fs.DurationVar(&a.StopTimeout, "stop-timeout", 30*time.Second, "SC's drain")
	fs.StringVar(&a.LogFormat, "log-format", "text", "text or json")
	fs.StringVar(&a.RESTURL, "rest-url", "", "Sauce Labs' REST API, for the backstop")
	if err := fs.Parse(args); err != nil {
		return a, &plugin.SettingsError{Problems: []string{"reap: " + err.Error() + "; reap is the plugin's own watchdog command"}}
	}
	if a.Target == "" || deadline <= 0 {
		return a, &plugin.SettingsError{Problems: []string{"reap: --target and --deadline are required; reap is the plugin's own watchdog command"}}
	}
	a.Deadline, a.Networks = time.Unix(deadline, 0), plugin.SplitList(networks)
	return a, nil
}

// watchdogRun is one watchdog at work.
type watchdogRun struct {
	args WatchdogArgs
	eng  Engine
	log  *logrus.Entry
	// masker masks what the watchdog prints; it learns SC's secrets from
	// SC's container at teardown, before anything of SC's can be printed.
	masker *plugin.Masker
}

// Reap is the watchdog: it waits, without polling, until the pipeline step
// it is anchored on is removed (the runner's teardown) or the tunnel's
// deadline passes, then stops SC gracefully and removes it. It ends quietly
// when SC is removed by someone else (an explicit stop).
func Reap(ctx context.Context, a WatchdogArgs, eng Engine, log *logrus.Logger, masker *plugin.Masker) error {
	w := &watchdogRun{args: a, eng: eng, log: log.WithField("tunnel", a.Tunnel), masker: masker}
	return w.watch(ctx)
}

// streams are the watchdog's event subscriptions; when one breaks, the
// watchdog looks every watchdogPoll instead.
type streams struct {
	anchorEv, targetEv   <-chan engine.Event
	anchorErr, targetErr <-chan error
	poll                 <-chan time.Time
}

func (w *watchdogRun) subscribe(ctx context.Context) *streams {
	s := &streams{}
	if w.args.Anchor != "" {
		s.anchorEv, s.anchorErr = w.eng.WatchContainer(ctx, w.args.Anchor)
	}
	s.targetEv, s.targetErr = w.eng.WatchContainer(ctx, w.args.Target)
	return s
}

// look inspects the anchor and SC: done when either is gone, with why
// ("" when SC itself is gone, so there is nothing to tear down).
func (w *watchdogRun) look(ctx context.Context) (why string, done bool) {
	if w.args.Anchor != "" {
		if _, err := w.eng.InspectContainer(ctx, w.args.Anchor); engine.IsNotFound(err) {
			return "its pipeline step is gone", true
		}
	}
	if _, err := w.eng.InspectContainer(ctx, w.args.Target); engine.IsNotFound(err) {
		return "", true
	}
	return "", false
}

func (w *watchdogRun) watch(ctx context.Context) error {
	a := w.args
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := w.subscribe(wctx)
	deadline := time.NewTimer(time.Until(a.Deadline))
	defer deadline.Stop()
	w.log.WithField("container", plugin.Short(a.Target)).Infof("watching tunnel %s until %s (anchor %s)",
		a.Tunnel, a.Deadline.UTC().Format(time.RFC3339), orNone(plugin.Short(a.Anchor)))
	// Subscribed: now look, so that nothing that happened before is missed.
	if why, done := w.look(ctx); done {
		return w.teardown(ctx, why, true)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-deadline.C:
			return w.teardown(ctx, "max_lifetime reached", false)
		case ev, ok := <-s.anchorEv:
			if !ok {
				s.anchorEv, s.poll = nil, time.Tick(watchdogPoll)
			} else if ev.Action == "destroy" {
				return w.teardown(ctx, "its pipeline step was removed", true)
			}
		case ev, ok := <-s.targetEv:
			if !ok {
				s.targetEv, s.poll = nil, time.Tick(watchdogPoll)
			} else if ev.Action == "destroy" {
				w.log.WithField("container", plugin.Short(a.Target)).Info("the tunnel was removed; watchdog done")
				return nil
			}
		case <-s.anchorErr:
			s.anchorEv, s.anchorErr, s.poll = nil, nil, time.Tick(watchdogPoll)
		case <-s.targetErr:
			s.targetEv, s.targetErr, s.poll = nil, nil, time.Tick(watchdogPoll)
		case <-s.poll:
			if why, done := w.look(ctx); done {
				return w.teardown(ctx, why, true)
			}
		}
	}
}

// networkWait bounds how long a watchdog waits for the runner's network to
// empty before it removes it.
const networkWait = 30 * time.Second

// teardown takes SC off the runner's networks at once (their removal is the
// runner's next step, and fails while SC is attached), gives it egress on
// the default bridge for its drain, stops it gracefully and removes it.
// When the pipeline is over (stageOver), the runner's networks it left
// behind are removed too: Drone's and Harness's runners try once and ignore
// the failure. why == "" means SC is already gone.
func (w *watchdogRun) teardown(ctx context.Context, why string, stageOver bool) error {
	a := w.args
	if why == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.StopTimeout+plugin.CleanupTimeout+networkWait)
	defer cancel()
	log := w.log.WithField("container", plugin.Short(a.Target))
	log.Infof("%s: stopping tunnel %s", why, a.Tunnel)
	w.leaveNetworks(ctx)
	// SC's own variables, for the backstop: held in memory only, at this moment.
	before, _ := w.eng.InspectContainer(ctx, a.Target)
	secrets, _ := scSecrets(ctx, w.eng, before)
	w.masker.Add(secrets...)
	recorded := sauceID(ctx, w.eng, a.Target)
	killed, ungraceful, err := stopSC(ctx, w.eng, a.Target, before, a.StopTimeout)
	if err != nil {
		log.WithError(err).Warn("could not stop sauce connect gracefully")
	}
	if killed {
		log.Warnf("sauce connect did not finish draining within stop_timeout (%s) and was killed", a.StopTimeout)
	}
	if err := w.eng.RemoveContainer(ctx, a.Target); err != nil {
		return err
	}
	if ungraceful != "" {
		plugin.Backstop(ctx, log, before.Env, a.RESTURL, a.Tunnel, recorded, ungraceful)
	}
	log.Infof("tunnel %s removed", a.Tunnel)
	if stageOver {
		for _, n := range a.Networks {
			w.removeLeftNetwork(ctx, n)
		}
	}
	return nil
}

// leaveNetworks disconnects SC from the runner's networks and, when that
// leaves it with none, connects it to the default bridge so that it can
// still reach Sauce Labs to close the tunnel.
func (w *watchdogRun) leaveNetworks(ctx context.Context) {
	id := w.args.Target
	for _, n := range w.args.Networks {
		if err := w.eng.Disconnect(ctx, n, id); err != nil {
			w.log.WithError(err).Debugf("could not leave network %s", n)
		}
	}
	c, err := w.eng.InspectContainer(ctx, id)
	if err != nil || len(c.Networks) > 0 || c.NetworkMode == "host" || strings.HasPrefix(c.NetworkMode, "container:") {
		return
	}
	if err := w.eng.Connect(ctx, "bridge", id, nil); err != nil {
		w.log.WithError(err).Debug("could not give sauce connect egress for its drain")
	}
}

// removeLeftNetwork removes a runner's network once no container is
// attached any more. A network the runner removed itself is done.
func (w *watchdogRun) removeLeftNetwork(ctx context.Context, name string) {
	ctx, cancel := context.WithTimeout(ctx, networkWait)
	defer cancel()
	attached := 0
	err := backoff.Retry(ctx, backoff.Policy{First: 100 * time.Millisecond, Factor: 1}, func(ctx context.Context) error {
		n, err := w.eng.InspectNetwork(ctx, name)
		switch {
		case engine.IsNotFound(err):
			return nil
		case err != nil:
			w.log.WithError(err).Debugf("could not look at network %s", name)
			return nil
		case len(n.Containers) > 0:
			attached = len(n.Containers)
			return errors.New("in use")
		}
		if err := w.eng.RemoveNetwork(ctx, name); err != nil {
			w.log.WithError(err).Warnf("could not remove network %s, which its pipeline left behind", name)
			return nil
		}
		w.log.Infof("removed network %s, which its pipeline left behind", name)
		return nil
	})
	if err != nil {
		w.log.Infof("network %s still has %d containers attached; leaving it", name, attached)
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// watchdog is a watchdog the plugin has started, watched until the tunnel
// is ready so that one that dies at once is reported.
type watchdog struct {
	id     string
	events <-chan engine.Event
	logs   *tailBuffer
	logsOK <-chan struct{}
	stop   context.CancelFunc
}

// launchWatchdog creates the watchdog for SC container scID and starts it
// in the background; the channel yields it once started, or nil. It needs
// the plugin's own image, so it runs only when the plugin's container is
// known. A watchdog that cannot be created or started is a warning, never
// a failed start: the stop step and max_lifetime still end the tunnel.
// Once started, the watchdog is never removed by the plugin: it ends by
// itself when SC is removed, so a plugin killed halfway through its own
// cleanup cannot leave SC unguarded.
func (b *backend) launchWatchdog(ctx context.Context, self *engine.Container, g guard, scID string, deadline time.Time) <-chan *watchdog {
	out := make(chan *watchdog, 1)
	spec, ok := watchdogSpec(b.cfg, *self, g, scID, deadline, b.s.Opt.Now(), b.access)
	if !ok {
		b.log.Warn("no watchdog: the Docker socket is not a mount of this container; the tunnel is removed by the stop step or when it expires")
		out <- nil
		return out
	}
	b.log.WithField("container", plugin.Short(scID)).Debug(trace(spec))
	id, err := b.eng.CreateContainer(ctx, spec)
	if err != nil {
		if id != "" {
			_ = b.eng.RemoveContainer(context.WithoutCancel(ctx), id)
		}
		b.log.Warnf("no watchdog: %v; %s", err, noWatchdogMeans)
		out <- nil
		return out
	}
	wctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	events, _ := b.eng.WatchContainer(wctx, id)
	go func() {
		if err := b.eng.StartContainer(ctx, id); err != nil {
			stop()
			_ = b.eng.RemoveContainer(context.WithoutCancel(ctx), id)
			b.log.Warnf("no watchdog: %v; %s", err, noWatchdogMeans)
			out <- nil
			return
		}
		logs := &tailBuffer{}
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = b.eng.ContainerLogs(wctx, id, engine.LogsOptions{Follow: true}, logs, logs)
		}()
		out <- &watchdog{id: id, events: events, logs: logs, logsOK: done, stop: stop}
	}()
	return out
}

// noWatchdogMeans is what a missing watchdog leaves in place.
const noWatchdogMeans = "the tunnel is removed by the stop step or when max_lifetime passes"

// check warns, once, when the watchdog is no longer running, naming its
// exit code and last log line; then it stops watching.
func (w *watchdog) check(ctx context.Context, b *backend) {
	if w == nil {
		return
	}
	defer w.stop()
	c, err := b.eng.InspectContainer(ctx, w.id)
	if err == nil && c.State.Running {
		return
	}
	code := c.State.ExitCode
	for done := false; !done; {
		select {
		case ev, ok := <-w.events:
			if !ok {
				done = true
			} else if ev.Action == "die" {
				code = ev.ExitCode
			}
		case <-time.After(50 * time.Millisecond):
			done = true
		}
	}
	select {
	case <-w.logsOK:
	case <-time.After(200 * time.Millisecond):
	}
	b.log.Warnf("the watchdog exited at once with code %d (%s); %s", code, orNone(w.logs.last()), noWatchdogMeans)
}

// tailBuffer keeps the last line written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if len(t.buf) > 4096 {
		t.buf = t.buf[len(t.buf)-4096:]
	}
	return len(b), nil
}

func (t *tailBuffer) last() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(string(t.buf)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// sweep removes, by exact ID, the containers of this plugin that expired:
// leftovers of runs that crashed or were killed before they could clean up.
// Live tunnels of other pipelines are left alone.
func (b *backend) sweep(ctx context.Context, all []engine.Summary) {
	now := b.s.Opt.Now().Unix()
	for _, c := range all {
		if c.Labels[plugin.LabelManaged] != "true" {
			continue
		}
		exp, err := strconv.ParseInt(c.Labels[plugin.LabelExpires], 10, 64)
		if err != nil || exp > now {
			continue
		}
		b.log.WithField("container", plugin.Short(c.ID)).Infof("removing the expired %s container of tunnel %s", orNone(c.Labels[plugin.LabelRole]), c.Labels[plugin.LabelTunnel])
		if err := b.remove(ctx, c.ID, plugin.FailureGrace); err != nil {
			b.log.WithError(err).Warn("could not remove an expired container")
		}
	}
}
