package docker

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/backoff"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

// staleCheck bounds how long a start gives a running tunnel of its name
// whose own ready_timeout has passed to answer ready: one that never
// became ready must not eat the new start's ready_timeout.
const staleCheck = 5 * time.Second

// reuse takes a container of this tunnel from an earlier or a concurrent
// start (found). A running, ready one is reused (never two SC with one
// tunnel name). One still within the ready_timeout of the start that
// created it (its ready-by label) is waited for: parallel stages that share
// a tunnel name get the tunnel that won the race. Anything else of that
// name is removed so that a fresh one can start; replaced says that a
// tunnel this start waited for never became ready, and was removed.
func (b *backend) reuse(ctx context.Context, st site, found []engine.Summary, foreground bool) (_ *tunnel, replaced bool, _ error) {
	for _, s := range found {
		readyBy, _ := strconv.ParseInt(s.Labels[plugin.LabelReadyBy], 10, 64)
		young := b.s.Opt.Now().Before(time.Unix(readyBy, 0))
		if !foreground && (s.State == "running" || young && s.State == "created") {
			t, gone, err := b.join(ctx, st, s.ID, young, time.Unix(readyBy, 0))
			switch {
			case t != nil || err != nil:
				return t, false, err
			case gone:
				continue // its own start failed and removed it: start afresh
			}
			replaced = true
		} else {
			b.log.WithField("container", engine.ShortID(s.ID)).Infof("replacing the %s container of tunnel %s", s.State, b.cfg.TunnelName)
		}
		if err := b.remove(ctx, s.ID, plugin.FailureGrace); err != nil {
			return nil, false, err
		}
	}
	return nil, replaced, nil
}

// join waits for the running (or, young, still starting) tunnel
// container id to be ready and takes it, reporting it. gone says that it
// went away meanwhile; neither a tunnel nor gone means it did not become
// ready and is to be replaced.
func (b *backend) join(ctx context.Context, st site, id string, young bool, readyBy time.Time) (_ *tunnel, gone bool, _ error) {
	log := b.log.WithField("container", engine.ShortID(id))
	until := time.Now().Add(staleCheck)
	if young {
		log.Infof("another start is bringing tunnel %s up; waiting for it", b.cfg.TunnelName)
		until = readyBy
	}
	wctx, cancel := context.WithDeadlineCause(ctx, until, plugin.ErrReadyTimeout)
	defer cancel()
	t, err := b.awaitRunning(wctx, st, id)
	switch {
	case t != nil:
		log.Infof("tunnel %s is already running and ready; reusing it", b.cfg.TunnelName)
		b.s.Report(&t.Tunnel)
		return t, false, nil
	case ctx.Err() != nil && !errors.Is(context.Cause(ctx), plugin.ErrReadyTimeout):
		// A signal; the start's own ready_timeout, spent on the wait,
		// is renewed for the replacement.
		return nil, false, context.Cause(ctx)
	case young && isGone(err):
		return nil, true, nil
	case young:
		log.Warnf("the tunnel another start was bringing up did not become ready by its ready_timeout (%v); replacing it", err)
	default:
		log.Warnf("the running tunnel of this name did not become ready (%v); replacing it", err)
	}
	return nil, false, nil
}

// awaitRunning waits, within ctx, for an existing SC container to be
// ready; a container still being created by another start is given time
// to start.
func (b *backend) awaitRunning(ctx context.Context, st site, id string) (*tunnel, error) {
	var sc engine.Container
	err := backoff.Retry(ctx, backoff.Policy{First: inspectEvery, Factor: 1}, func(ctx context.Context) (err error) {
		if sc, err = b.eng.InspectContainer(ctx, id); err != nil {
			return backoff.Permanent(err)
		}
		if sc.State.Status == "created" {
			return errors.New("still being created")
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	ep := resolveEndpoints(b.cfg, st.Owner, sc, b.access.Host)
	target := scTarget{inspect: b.inspectState(id), probe: readyz(b.s, ep.Probe)}
	if err := plugin.WaitReady(ctx, target, "GET "+ep.Probe+"/readyz of the running tunnel"); err != nil {
		return nil, err
	}
	t := &tunnel{Tunnel: b.tunnelIn(id, ep)}
	t.Reused, t.SauceID = true, sauceID(ctx, b.eng, id)
	return t, nil
}
