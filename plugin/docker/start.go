package docker

import (
	"context"
	"errors"
	"fmt"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

// Start opens the tunnel, or reuses a ready one of its name, within the
// ready_timeout ctx carries.
func (b *backend) Start(ctx context.Context) (*plugin.Tunnel, error) {
	t, err := b.open(ctx, false)
	if err != nil {
		return nil, err
	}
	return &t.Tunnel, nil
}

// Run keeps the tunnel in the foreground until ctx ends, then stops it:
// SC's log is streamed, SIGTERM/SIGINT stop it gracefully, and SC dying is
// a failure.
func (b *backend) Run(ctx context.Context) error {
	rctx, cancel := plugin.ReadyBy(ctx, b.cfg)
	t, err := b.open(rctx, true)
	err = plugin.TimedOut(rctx, b.cfg, err)
	cancel()
	if err != nil {
		return err
	}
	defer t.stopLogs()
	select {
	case <-ctx.Done():
		b.log.Infof("%v: stopping tunnel %s", context.Cause(ctx), t.Name)
		return b.shutdown(ctx, t.ID)
	case code := <-t.exited:
		return b.ended(context.WithoutCancel(ctx), t, code)
	}
}

// open opens the tunnel, in one straight line: where the plugin runs and
// what the engine holds (one listing), a running tunnel of the name to
// reuse, the image, where SC goes, then attempts until SC is ready.
// foreground keeps SC's log streaming and watches for its exit (run mode).
func (b *backend) open(ctx context.Context, foreground bool) (*tunnel, error) {
	began := b.s.Opt.Now()
	all, err := b.eng.ListContainers(ctx, nil)
	if err != nil {
		return nil, err
	}
	st, err := locate(ctx, b.eng, b.cfg, b.access, all, b.here(), b.log, began)
	if err != nil {
		return nil, err
	}
	b.sweep(ctx, all)
	t, replaced, err := b.reuse(ctx, st, mine(all, b.cfg.TunnelName), foreground)
	if err != nil || t != nil {
		return t, err
	}
	if replaced {
		// The wait for another start's tunnel took this start's time: the
		// replacement gets a ready_timeout of its own.
		b.log.Infof("starting tunnel %s afresh, with its own ready_timeout (%s)", b.cfg.TunnelName, b.cfg.ReadyTimeout)
		var cancel context.CancelFunc
		ctx, cancel = plugin.Renew(ctx, b.cfg.ReadyTimeout)
		defer cancel()
		began = b.s.Opt.Now()
	}
	if t, err = b.create(ctx, st, all, foreground); err != nil {
		return nil, err
	}
	t.ReadyIn = b.s.Opt.Now().Sub(began)
	b.s.Report(&t.Tunnel)
	return t, nil
}

// create makes SC's container where the site says, from the image, and
// attempts until it is ready.
func (b *backend) create(ctx context.Context, st site, all []engine.Summary, foreground bool) (*tunnel, error) {
	img, err := b.ensureImage(ctx)
	if err != nil {
		return nil, err
	}
	pl := place(b.cfg, st, img)
	if pl.RemoteHost != "" {
		b.log.Infof("the docker engine runs on %s, another host than this step's: SC's API is published on every address there (api_bind %s there is out of this pipeline's reach)", pl.RemoteHost, b.cfg.APIBind)
	}
	if err := checkHostPort(b.cfg, pl, st, all); err != nil {
		return nil, err
	}
	defer b.s.WarnNameInUse(ctx)()
	var t *tunnel
	err = plugin.Attempts(ctx, b.s, func(ctx context.Context) error {
		t, err = b.attemptOrJoin(ctx, pl, st, foreground)
		return err
	})
	return t, err
}

// attemptOrJoin makes one attempt; when a concurrent start of the tunnel
// created its container first, it takes that start's tunnel instead (or,
// when that one went away, attempts again).
func (b *backend) attemptOrJoin(ctx context.Context, pl placement, st site, foreground bool) (*tunnel, error) {
	for {
		t, err := b.attempt(ctx, pl, st, foreground)
		if !errors.Is(err, errLostRace) || foreground {
			return t, err
		}
		found, lerr := b.eng.ListContainers(ctx, tunnelLabels(b.cfg.TunnelName))
		if lerr != nil {
			return nil, lerr
		}
		if t, _, err = b.reuse(ctx, st, found, foreground); t != nil || err != nil {
			return t, err
		}
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
	}
}

// ended is run mode's end when SC stopped by itself: its tunnel deleted at
// Sauce Labs when it did not close it, its log saved, its container
// removed; a failure.
func (b *backend) ended(ctx context.Context, t *tunnel, code int) error {
	if sc, err := b.eng.InspectContainer(ctx, t.ID); err == nil && code != 0 {
		plugin.Backstop(ctx, b.log, sc.Env, b.cfg.RESTURL, t.Name, t.SauceID, fmt.Sprintf("sauce connect ended with exit code %d while the tunnel was up", code))
	}
	if b.cfg.LogsFile != "" {
		if err := b.saveLogs(ctx, t.ID); err != nil {
			b.log.WithError(err).Warn("could not save sauce connect's log")
		}
	}
	if err := b.eng.RemoveContainer(ctx, t.ID); err != nil {
		b.log.WithError(err).Warn("could not remove the sauce connect container")
	}
	return fmt.Errorf("sauce connect exited with code %d while the tunnel was up", code)
}
