package docker

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/backoff"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

// readyLine is what SC5 logs once the tunnel is up.
const readyLine = "Sauce Connect is up"

// attempt creates and starts one SC container, with its watchdog, and
// waits until SC is ready and Sauce Labs lists the tunnel. What it
// created is removed when it fails.
func (b *backend) attempt(ctx context.Context, pl placement, st site, foreground bool) (t *tunnel, err error) {
	var cl plugin.Rollback
	defer func() {
		if err != nil {
			if cerr := cl.Do(ctx); cerr != nil {
				b.log.WithError(cerr).Warn("could not remove the failed sauce connect container")
			}
		}
	}()
	spec := containerSpec(b.cfg, pl, b.s.Opt.Now())
	fmt.Fprintln(b.s.Opt.Out, trace(spec))
	// Subscribe before creating, by name, so that no event is missed.
	wctx, stopWatch := context.WithCancel(context.WithoutCancel(ctx))
	cl.Add(func(context.Context) error { stopWatch(); return nil })
	events, errs := b.eng.WatchContainer(wctx, spec.Name)
	id, err := b.eng.CreateContainer(ctx, spec)
	if id != "" {
		cl.Add(func(ctx context.Context) error { return b.remove(ctx, id, plugin.FailureGrace) })
	}
	if err != nil {
		if engine.IsConflict(err) {
			return nil, b.nameTaken(ctx, spec.Name, err)
		}
		return nil, err
	}
	// From here on only this very container counts, never an earlier or a
	// concurrent one that had its name.
	target := scTarget{events: onlyOf(wctx, id, events), errs: errs, inspect: b.inspectState(id)}
	if t, err = b.launch(ctx, wctx, pl, st, id, foreground, &target); err != nil {
		return nil, err
	}
	if foreground {
		t.exited = watchExit(wctx, target.events, errs, target.inspect)
		t.stopLogs = stopWatch
	} else {
		stopWatch()
	}
	return t, nil
}

// launch starts SC (its watchdog alongside) and waits until it is ready
// and confirmed by Sauce Labs, recording the tunnel's ID in SC's
// container.
func (b *backend) launch(ctx, wctx context.Context, pl placement, st site, id string, foreground bool, target *scTarget) (*tunnel, error) {
	// The watchdog is created before SC starts and its start is issued
	// alongside SC's, so the two starts overlap. Killed before this point,
	// the plugin leaves only never-started containers, which hold no tunnel
	// and no network endpoint; killed after both requests are out, the
	// watchdog guards SC. Only a kill in the instant between the two
	// requests leaves a running SC unguarded, until it expires (the sweep,
	// drone-gc).
	dog := noWatchdog
	if b.cfg.Cleanup == plugin.CleanupAuto && st.Self != nil {
		dog = b.launchWatchdog(ctx, st.Self, guardOf(b.cfg, st.Self, st.Owner, pl), id, pl.Deadline)
	}
	startErr := b.eng.StartContainer(ctx, id)
	// The watchdog's start completes while SC gets ready: on a busy engine
	// it takes as long as SC's own, and must not add to the time to ready.
	// Every return below waits for it, so the plugin never exits with the
	// request in flight.
	defer func() { (<-dog).check(ctx, b) }()
	if startErr != nil {
		if pl.Publish != nil && pl.Publish.Port != 0 {
			return nil, fmt.Errorf("%w; if host port %d is taken, set api_host_port to a free port, or 0 to pick one", startErr, pl.Publish.Port)
		}
		return nil, startErr
	}
	// Follow only once started: the engine ends a follow of a created
	// container at once. The stream replays the log from its start.
	hint := make(chan struct{}, 1)
	logsDone := b.followLogs(wctx, id, foreground || b.cfg.Debug, hint)
	sc, err := b.eng.InspectContainer(ctx, id)
	if err != nil {
		return nil, err
	}
	ep := resolveEndpoints(b.cfg, st.Owner, sc, b.access.Host)
	b.log.WithField("container", engine.ShortID(id)).Debugf("waiting for %s/readyz", ep.Probe)
	target.hint, target.probe = hint, readyz(b.s, ep.Probe)
	t := &tunnel{Tunnel: b.tunnelIn(id, ep)}
	err = plugin.WaitReady(ctx, *target, "GET "+ep.Probe+"/readyz to answer 200")
	if err == nil {
		err = b.s.Confirm(ctx, &t.Tunnel)
	}
	if err != nil {
		return nil, b.explainFailure(ctx, id, err, logsDone)
	}
	b.recordSauceID(ctx, t.Tunnel)
	return t, nil
}

// explainFailure prints the end of SC's log and turns a failed wait into the
// error the user sees: bad credentials and invalid settings are permanent.
func (b *backend) explainFailure(ctx context.Context, id string, err error, logsDone <-chan struct{}) error {
	var (
		ex *plugin.ExitedError
		to *plugin.TimeoutError
	)
	if !errors.As(err, &ex) && !errors.As(err, &to) {
		return fmt.Errorf("wait for tunnel %s: %w", b.cfg.TunnelName, err)
	}
	if ex != nil {
		// Let the log stream drain what SC wrote before it died.
		select {
		case <-logsDone:
		case <-time.After(time.Second):
		}
	}
	tail := b.tail(ctx, id)
	b.s.PrintLog(tail)
	return b.s.ExplainExit(ctx, err, tail)
}

// followLogs streams SC's log while it runs: each line is scanned for the
// ready line (to probe at once) and, when show is set, printed.
func (b *backend) followLogs(ctx context.Context, id string, show bool, hint chan<- struct{}) <-chan struct{} {
	done := make(chan struct{})
	pr, pw := io.Pipe()
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if strings.Contains(line, readyLine) {
				select {
				case hint <- struct{}{}:
				default:
				}
			}
			if show {
				fmt.Fprintln(b.s.Opt.Out, "[sauce-connect] "+line)
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	go func() {
		err := b.eng.ContainerLogs(ctx, id, engine.LogsOptions{Follow: true}, pw, pw)
		pw.CloseWithError(err)
	}()
	return done
}

// watchExit reports SC's exit code once it stops (run mode), from the event
// stream or, when that breaks, by inspecting.
func watchExit(ctx context.Context, events <-chan engine.Event, errs <-chan error, inspect func(context.Context) (engine.State, error)) <-chan int {
	out := make(chan int, 1)
	go func() {
		for events != nil {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-events:
				if !ok {
					events = nil
				} else if ev.Action == "die" || ev.Action == "destroy" {
					out <- ev.ExitCode
					return
				}
			case <-errs:
				events = nil
			}
		}
		out <- exitByInspect(ctx, inspect)
	}()
	return out
}

// exitByInspect inspects SC every inspectEvery until it has stopped, and
// returns its exit code (-1 when ctx ends first).
func exitByInspect(ctx context.Context, inspect func(context.Context) (engine.State, error)) int {
	code := -1
	_ = backoff.Retry(ctx, backoff.Policy{First: inspectEvery, Factor: 1}, func(ctx context.Context) error {
		st, err := inspect(ctx)
		if engine.IsNotFound(err) || err == nil && !st.Running {
			code = st.ExitCode
			return nil
		}
		return errors.New("still running")
	})
	return code
}

// nameTaken explains a container-name conflict.
func (b *backend) nameTaken(ctx context.Context, name string, err error) error {
	c, ierr := b.eng.InspectContainer(ctx, name)
	if ierr == nil && c.Labels[plugin.LabelManaged] != "true" {
		return fmt.Errorf("container name %s is taken by a container this plugin did not start; set container_name to another name, or remove that container: %w", name, err)
	}
	return fmt.Errorf("another start of tunnel %s created its container first: %w: %w", b.cfg.TunnelName, err, errLostRace)
}

// errLostRace marks a start that a concurrent start of its tunnel beat to
// creating the container; it waits for that tunnel instead.
var errLostRace = errors.New("waiting for it")
