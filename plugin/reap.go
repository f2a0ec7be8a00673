package plugin

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

// watchdogPoll paces the watchdog's checks only when an event stream broke;
// otherwise it sleeps on the streams and costs nothing.
const watchdogPoll = 2 * time.Second

// reap is the watchdog: it waits, without polling, until the pipeline step
// it is anchored on is removed (the runner's teardown) or the tunnel's
// deadline passes, then stops SC gracefully and removes it. It ends quietly
// when SC is removed by someone else (an explicit stop).
func (p *run) reap(ctx context.Context) error {
	w := p.cfg.Watchdog
	log := p.log.WithField("container", short(w.Target))
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var anchorEv <-chan engine.Event
	var anchorErr <-chan error
	if w.Anchor != "" {
		anchorEv, anchorErr = p.eng.WatchContainer(wctx, w.Anchor)
	}
	targetEv, targetErr := p.eng.WatchContainer(wctx, w.Target)
	deadline := time.NewTimer(time.Until(w.Deadline))
	defer deadline.Stop()
	log.Infof("watching tunnel %s until %s (anchor %s)", p.cfg.TunnelName, w.Deadline.UTC().Format(time.RFC3339), orNone(short(w.Anchor)))

	// Subscribed: now look, so that nothing that happened before is missed.
	var poll <-chan time.Time
	check := func() (string, bool) {
		if w.Anchor != "" {
			if _, err := p.eng.InspectContainer(ctx, w.Anchor); engine.IsNotFound(err) {
				return "its pipeline step is gone", true
			}
		}
		if _, err := p.eng.InspectContainer(ctx, w.Target); engine.IsNotFound(err) {
			return "", true
		}
		return "", false
	}
	if why, done := check(); done {
		return p.teardown(ctx, why)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-deadline.C:
			return p.teardown(ctx, "max_lifetime reached")
		case ev, ok := <-anchorEv:
			if !ok {
				anchorEv, poll = nil, time.Tick(watchdogPoll)
			} else if ev.Action == "destroy" {
				return p.teardown(ctx, "its pipeline step was removed")
			}
		case ev, ok := <-targetEv:
			if !ok {
				targetEv, poll = nil, time.Tick(watchdogPoll)
			} else if ev.Action == "destroy" {
				log.Info("the tunnel was removed; watchdog done")
				return nil
			}
		case <-anchorErr:
			anchorEv, anchorErr, poll = nil, nil, time.Tick(watchdogPoll)
		case <-targetErr:
			targetEv, targetErr, poll = nil, nil, time.Tick(watchdogPoll)
		case <-poll:
			if why, done := check(); done {
				return p.teardown(ctx, why)
			}
		}
	}
}

// teardown stops SC gracefully, detaches it from its networks (so that the
// runner's own network removal can succeed) and removes it. why == "" means
// SC is already gone.
func (p *run) teardown(ctx context.Context, why string) error {
	id := p.cfg.Watchdog.Target
	if why == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.StopTimeout+cleanupTimeout)
	defer cancel()
	p.log.WithField("container", short(id)).Infof("%s: stopping tunnel %s", why, p.cfg.TunnelName)
	killed, err := p.eng.StopContainer(ctx, id, p.cfg.StopTimeout)
	if err != nil {
		p.log.WithError(err).Warn("could not stop sauce connect gracefully")
	}
	if killed {
		p.log.Warnf("sauce connect did not finish draining within stop_timeout (%s) and was killed", p.cfg.StopTimeout)
	}
	if c, err := p.eng.InspectContainer(ctx, id); err == nil {
		for name := range c.Networks {
			if err := p.eng.Disconnect(ctx, name, id); err != nil {
				p.log.WithError(err).Debug("could not disconnect")
			}
		}
	}
	if err := p.eng.RemoveContainer(ctx, id); err != nil {
		return err
	}
	p.log.Infof("tunnel %s removed", p.cfg.TunnelName)
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// launchWatchdog creates the watchdog for SC container scID and starts it
// in the background; the channel reports the start. It needs the plugin's
// own image, so it runs only when the plugin runs in a container. Once
// started, the watchdog is never removed by the plugin: it ends by itself
// when SC is removed, so a plugin killed halfway through its own cleanup
// cannot leave SC unguarded.
func (p *run) launchWatchdog(ctx context.Context, self *engine.Container, scID string, deadline time.Time) (<-chan error, error) {
	spec, ok := WatchdogSpec(p.cfg, *self, scID, deadline, p.opt.Now(), p.opt.DockerHost)
	if !ok {
		p.log.Warn("no watchdog: the Docker socket is not a mount of this container; the tunnel is removed by the stop step or when it expires")
		return closedNil, nil
	}
	p.log.WithField("container", short(scID)).Debug(Trace(spec))
	id, err := p.eng.CreateContainer(ctx, spec)
	if err != nil {
		if id != "" {
			_ = p.eng.RemoveContainer(context.WithoutCancel(ctx), id)
		}
		return nil, fmt.Errorf("create watchdog: %w", err)
	}
	started := make(chan error, 1)
	go func() {
		err := p.eng.StartContainer(ctx, id)
		if err != nil {
			_ = p.eng.RemoveContainer(context.WithoutCancel(ctx), id)
			err = fmt.Errorf("start watchdog: %w", err)
		}
		started <- err
	}()
	return started, nil
}

// sweep removes, by exact ID, the containers of this plugin that expired:
// leftovers of runs that crashed or were killed before they could clean up.
// Live tunnels of other pipelines are left alone.
func (p *run) sweep(ctx context.Context) {
	found, err := p.eng.ListContainers(ctx, map[string]string{LabelManaged: "true"})
	if err != nil {
		p.log.WithError(err).Warn("could not look for expired tunnels")
		return
	}
	now := p.opt.Now().Unix()
	for _, c := range found {
		exp, err := strconv.ParseInt(c.Labels[LabelExpires], 10, 64)
		if err != nil || exp > now {
			continue
		}
		p.log.WithField("container", short(c.ID)).Infof("removing the expired %s container of tunnel %s", orNone(c.Labels[LabelRole]), c.Labels[LabelTunnel])
		if err := p.remove(ctx, c.ID, failureGrace); err != nil {
			p.log.WithError(err).Warn("could not remove an expired container")
		}
	}
}
