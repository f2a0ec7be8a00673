package docker

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"

	"github.com/sirupsen/logrus"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/backoff"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

// watchdogPoll paces the watchdog's checks only when an event stream broke;
// otherwise it sleeps on the streams and costs nothing.
const watchdogPoll = 2 * time.Second

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
	w.log.WithField("container", engine.ShortID(a.Target)).Infof("watching tunnel %s until %s (anchor %s)",
		a.Tunnel, a.Deadline.UTC().Format(time.RFC3339), orNone(engine.ShortID(a.Anchor)))
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
				w.log.WithField("container", engine.ShortID(a.Target)).Info("the tunnel was removed; watchdog done")
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
	log := w.log.WithField("container", engine.ShortID(a.Target))
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
		b.log.WithField("container", engine.ShortID(c.ID)).Infof("removing the expired %s container of tunnel %s", orNone(c.Labels[plugin.LabelRole]), c.Labels[plugin.LabelTunnel])
		if err := b.remove(ctx, c.ID, plugin.FailureGrace); err != nil {
			b.log.WithError(err).Warn("could not remove an expired container")
		}
	}
}
