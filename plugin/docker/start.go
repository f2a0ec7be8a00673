package docker

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

// tunnel is a ready SC container; in run mode it also reports SC's exit.
type tunnel struct {
	plugin.Tunnel
	exited   <-chan int // run mode: SC's exit code once it stops
	stopLogs func()
}

// readyLine is what SC5 logs once the tunnel is up.
const readyLine = "Sauce Connect is up"

// start opens the tunnel: reuse a ready one of the same name, or create a
// container and wait until SC is ready, retrying what a retry can fix.
// foreground keeps SC's log streaming and watches for its exit (run mode).
func (p *Backend) start(ctx context.Context, foreground bool) (*tunnel, error) {
	began := p.Opt.Now()
	self, err := whereAmI(ctx, p.eng, p.Log)
	if err != nil {
		return nil, err
	}
	owner, err := netnsOwner(ctx, p.eng, self)
	if err != nil {
		return nil, err
	}
	if p.Cfg.ProxySauceFrom != "" {
		p.Log.Debugf("proxy_sauce is not set: SC reaches Sauce Labs through the runner's %s", p.Cfg.ProxySauceFrom)
	}
	deadline := began.Add(p.Cfg.ReadyTimeout)
	// A transient engine failure is retried, within ready_timeout.
	rctx := engine.RetryUntil(ctx, deadline)
	p.sweep(rctx)
	t, replaced, err := p.reuse(rctx, owner, foreground, deadline)
	if err != nil || t != nil {
		if t != nil {
			p.Report(&t.Tunnel)
		}
		return t, err
	}
	if replaced {
		// The wait for another start's tunnel took this start's time: the
		// replacement gets a ready_timeout of its own.
		began, deadline = p.Opt.Now(), p.Opt.Now().Add(p.Cfg.ReadyTimeout)
		p.Log.Infof("starting tunnel %s afresh, with its own ready_timeout (%s)", p.Cfg.TunnelName, p.Cfg.ReadyTimeout)
	}
	ctx = engine.RetryUntil(ctx, deadline)
	pl := Place(p.Cfg, owner)
	if host, ok := PublishForRemoteEngine(&pl, p.access, owner); ok {
		p.Log.Infof("the docker engine runs on %s, another host than this step's: SC's API is published on every address there (api_bind %s there is out of this pipeline's reach)", host, p.Cfg.APIBind)
	}
	if pl.NetworkMode == "host" && p.Cfg.APIHostPort == 0 && onHostNetwork(owner) && !strings.HasPrefix(p.access.Host, "tcp://") {
		// api_host_port 0 in the host's network: pick a free port here.
		if pl.APIPort, err = freeHostPort(p.Cfg.APIBind); err != nil {
			return nil, err
		}
	}
	pl.Deadline = Deadline(p.Cfg, self, began)
	pl.Labels = PlatformLabels(self)
	if err := p.checkHostPort(ctx, pl, owner); err != nil {
		return nil, err
	}
	defer p.WarnNameInUse(ctx)()
	img, err := p.ensureImage(ctx, deadline)
	if err != nil {
		return nil, err
	}
	pl.ImageUser = img.User

	var cl plugin.Rollback
	for attempt := 1; ; attempt++ {
		t, err := p.attempt(ctx, &cl, pl, self, owner, deadline.Sub(p.Opt.Now()), foreground)
		if err == nil {
			cl.Forget()
			t.ReadyIn = p.Opt.Now().Sub(began)
			p.Report(&t.Tunnel)
			return t, nil
		}
		if cerr := cl.Do(ctx); cerr != nil {
			p.Log.WithError(cerr).Warn("could not remove the failed sauce connect container")
		}
		if errors.Is(err, errLostRace) && !foreground && p.Opt.Now().Before(deadline) {
			// A concurrent start of this tunnel created its container first.
			t, _, rerr := p.reuse(ctx, owner, foreground, deadline)
			if t != nil || rerr != nil {
				if t != nil {
					p.Report(&t.Tunnel)
				}
				return t, rerr
			}
			attempt--
			continue
		}
		if err := p.RetryAfter(ctx, err, attempt, deadline); err != nil {
			return nil, err
		}
	}
}

// attempt creates and starts one SC container and waits until it is ready.
// Whatever it creates is registered in cl before anything can fail.
func (p *Backend) attempt(ctx context.Context, cl *plugin.Rollback, pl Placement, self, owner *engine.Container, timeout time.Duration, foreground bool) (*tunnel, error) {
	deadline := p.Opt.Now().Add(timeout)
	spec := ContainerSpec(p.Cfg, pl, p.Opt.Now())
	fmt.Fprintln(p.Opt.Out, Trace(spec))

	// Subscribe before creating, by name, so that no event is missed.
	wctx, stopWatch := context.WithCancel(context.WithoutCancel(ctx))
	events, errs := p.eng.WatchContainer(wctx, spec.Name)
	id, err := p.eng.CreateContainer(ctx, spec)
	if id != "" {
		cl.Add(func(ctx context.Context) error { return p.remove(ctx, id, plugin.FailureGrace) })
	}
	cl.Add(func(context.Context) error { stopWatch(); return nil })
	if err != nil {
		if engine.IsConflict(err) {
			return nil, p.nameTaken(ctx, spec.Name, err)
		}
		return nil, err
	}
	// From here on only this very container counts, never an earlier or a
	// concurrent one that had its name.
	events = onlyOf(wctx, id, events)

	// The watchdog is created before SC starts and its start is issued
	// alongside SC's, so the two starts overlap. Killed before this point,
	// the plugin leaves only never-started containers, which hold no tunnel
	// and no network endpoint; killed after both requests are out, the
	// watchdog guards SC. Only a kill in the instant between the two
	// requests leaves a running SC unguarded, until it expires (the sweep,
	// drone-gc).
	dog := noWatchdog
	if p.Cfg.Cleanup == plugin.CleanupAuto && self != nil {
		dog = p.launchWatchdog(ctx, self, GuardOf(p.Cfg, self, owner, pl), id, pl.Deadline)
	}
	startErr := p.eng.StartContainer(ctx, id)
	// The watchdog's start completes while SC gets ready: on a busy engine
	// it takes as long as SC's own, and must not add to the time to ready.
	// Every return below waits for it, so the plugin never exits with the
	// request in flight.
	defer func() { (<-dog).check(ctx, p) }()
	if startErr != nil {
		if pl.Publish != nil && pl.Publish.Port != 0 {
			return nil, fmt.Errorf("%w; if host port %d is taken, set api_host_port to a free port, or 0 to pick one", startErr, pl.Publish.Port)
		}
		return nil, startErr
	}
	// Follow only once started: the engine ends a follow of a created
	// container at once. The stream replays the log from its start.
	hint := make(chan struct{}, 1)
	logsDone := p.followLogs(wctx, id, foreground || p.Cfg.Debug, hint)
	sc, err := p.eng.InspectContainer(ctx, id)
	if err != nil {
		return nil, err
	}
	ep := ResolveEndpoints(p.Cfg, owner, sc, p.access.Host)
	p.Log.WithField("container", plugin.Short(id)).Debugf("waiting for %s/readyz", ep.Probe)

	inspect := func(ctx context.Context) (engine.State, error) {
		c, err := p.eng.InspectContainer(ctx, id)
		return c.State, err
	}
	err = WaitReady(ctx, Target{
		Events: events, Errs: errs, Inspect: inspect, Hint: hint,
		Probe:   HTTPProbe(p.Opt.HTTP, ep.Probe),
		Awaited: "GET " + ep.Probe + "/readyz to answer 200",
	}, timeout)
	t := &tunnel{Tunnel: plugin.Tunnel{ID: id, Where: "container " + plugin.Short(id), Name: p.Cfg.TunnelName, Endpoints: ep}}
	if err == nil {
		err = p.Confirm(ctx, &t.Tunnel, deadline)
	}
	if err != nil {
		return nil, p.explainFailure(ctx, id, err, logsDone)
	}
	p.recordSauceID(ctx, t.Tunnel)
	if foreground {
		t.exited = watchExit(wctx, events, errs, inspect)
		t.stopLogs = stopWatch
	} else {
		stopWatch()
	}
	return t, nil
}

// noWatchdog is a channel that always yields nil: no watchdog to wait for.
var noWatchdog = func() <-chan *watchdog {
	c := make(chan *watchdog)
	close(c)
	return c
}()

// explainFailure prints the end of SC's log and turns a failed wait into the
// error the user sees: bad credentials and invalid settings are permanent.
func (p *Backend) explainFailure(ctx context.Context, id string, err error, logsDone <-chan struct{}) error {
	var (
		ex *plugin.ExitedError
		to *plugin.TimeoutError
	)
	if !errors.As(err, &ex) && !errors.As(err, &to) {
		return fmt.Errorf("wait for tunnel %s: %w", p.Cfg.TunnelName, err)
	}
	if ex != nil {
		// Let the log stream drain what SC wrote before it died.
		select {
		case <-logsDone:
		case <-time.After(time.Second):
		}
	}
	tail := p.tail(ctx, id)
	p.PrintLog(tail)
	return p.ExplainExit(ctx, err, tail)
}

// sauceIDFile is where, in SC's own container, the plugin records the
// tunnel's ID at Sauce Labs once Sauce confirmed it: a container's labels
// are fixed at its creation, and the stop step, the watchdog and a later
// start read it there (the engine's archive API reads an ended
// container's files too).
const sauceIDFile = "/run/drone-sauce-connect/sauce-tunnel-id"

// recordSauceID writes the confirmed tunnel's Sauce Labs ID into SC's
// container; without it the backstop deletes nothing.
func (p *Backend) recordSauceID(ctx context.Context, t plugin.Tunnel) {
	if t.SauceID == "" {
		return
	}
	err := p.eng.PutFiles(ctx, t.ID, []engine.File{{Path: sauceIDFile, Mode: 0o444, Content: []byte(t.SauceID)}})
	if err != nil {
		p.Log.Warnf("could not record the tunnel's Sauce Labs ID in its container (%v); if SC does not close the tunnel itself, nothing deletes it at Sauce Labs", err)
	}
}

// sauceID reads the tunnel's Sauce Labs ID recorded in SC's container id,
// "" when none was.
func sauceID(ctx context.Context, eng Engine, id string) string {
	b, err := eng.ReadFile(ctx, id, sauceIDFile)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// tail returns the last lines of SC's log.
func (p *Backend) tail(ctx context.Context, id string) string {
	var buf bytes.Buffer
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := p.eng.ContainerLogs(ctx, id, engine.LogsOptions{Tail: strconv.Itoa(plugin.TailLines)}, &buf, &buf); err != nil {
		p.Log.WithError(err).Debug("could not read sauce connect's log")
	}
	return buf.String()
}

// followLogs streams SC's log while it runs: each line is scanned for the
// ready line (to probe at once) and, when show is set, printed.
func (p *Backend) followLogs(ctx context.Context, id string, show bool, hint chan<- struct{}) <-chan struct{} {
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
				fmt.Fprintln(p.Opt.Out, "[sauce-connect] "+line)
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	go func() {
		err := p.eng.ContainerLogs(ctx, id, engine.LogsOptions{Follow: true}, pw, pw)
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
		tick := time.NewTicker(inspectEvery)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				st, err := inspect(ctx)
				if engine.IsNotFound(err) || err == nil && !st.Running {
					out <- st.ExitCode
					return
				}
			}
		}
	}()
	return out
}

// staleCheck bounds how long a start gives a running tunnel of its name
// whose own ready_timeout has passed to answer ready: one that never
// became ready must not eat the new start's ready_timeout.
const staleCheck = 5 * time.Second

// reuse finds a container of this tunnel from an earlier or a concurrent
// start. A running, ready one is reused (never two SC with one tunnel
// name). One still within the ready_timeout of the start that created it
// (its ready-by label) is waited for, until deadline: parallel stages that
// share a tunnel name get the tunnel that won the race. Anything else of
// that name is removed so that a fresh one can start; replaced says that a
// tunnel this start waited for never became ready, and was removed.
func (p *Backend) reuse(ctx context.Context, owner *engine.Container, foreground bool, deadline time.Time) (_ *tunnel, replaced bool, _ error) {
	found, err := p.eng.ListContainers(ctx, tunnelLabels(p.Cfg.TunnelName))
	if err != nil {
		return nil, false, err
	}
	for _, s := range found {
		log := p.Log.WithField("container", plugin.Short(s.ID))
		readyBy, _ := strconv.ParseInt(s.Labels[plugin.LabelReadyBy], 10, 64)
		young := p.Opt.Now().Before(time.Unix(readyBy, 0))
		if !foreground && (s.State == "running" || young && s.State == "created") {
			budget := staleCheck
			if young {
				budget = time.Unix(readyBy, 0).Sub(p.Opt.Now())
				log.Infof("another start is bringing tunnel %s up; waiting for it", p.Cfg.TunnelName)
			}
			t, err := p.awaitRunning(ctx, owner, s.ID, min(budget, deadline.Sub(p.Opt.Now())))
			switch {
			case t != nil:
				log.Infof("tunnel %s is already running and ready; reusing it", p.Cfg.TunnelName)
				return t, false, nil
			case ctx.Err() != nil:
				return nil, false, context.Cause(ctx)
			case young && isGone(err):
				// Its own start failed and removed it: start afresh.
				continue
			case young:
				log.Warnf("the tunnel another start was bringing up did not become ready by its ready_timeout (%v); replacing it", err)
			default:
				log.Warnf("the running tunnel of this name did not become ready (%v); replacing it", err)
			}
			replaced = true
		} else {
			log.Infof("replacing the %s container of tunnel %s", s.State, p.Cfg.TunnelName)
		}
		if err := p.remove(ctx, s.ID, plugin.FailureGrace); err != nil {
			return nil, false, err
		}
	}
	return nil, replaced, nil
}

// awaitRunning waits up to budget for an existing SC container to be ready;
// a container still being created by another start is given time to start.
func (p *Backend) awaitRunning(ctx context.Context, owner *engine.Container, id string, budget time.Duration) (*tunnel, error) {
	until := p.Opt.Now().Add(budget)
	sc, err := p.eng.InspectContainer(ctx, id)
	for err == nil && sc.State.Status == "created" && p.Opt.Now().Before(until) {
		select {
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		case <-time.After(inspectEvery):
		}
		sc, err = p.eng.InspectContainer(ctx, id)
	}
	if err != nil {
		return nil, err
	}
	ep := ResolveEndpoints(p.Cfg, owner, sc, p.access.Host)
	closed := make(chan engine.Event)
	close(closed)
	err = WaitReady(ctx, Target{
		Events: closed,
		Inspect: func(ctx context.Context) (engine.State, error) {
			c, err := p.eng.InspectContainer(ctx, id)
			return c.State, err
		},
		Probe:   HTTPProbe(p.Opt.HTTP, ep.Probe),
		Awaited: "GET " + ep.Probe + "/readyz of the running tunnel",
	}, max(until.Sub(p.Opt.Now()), time.Millisecond))
	if err != nil {
		return nil, err
	}
	return &tunnel{Tunnel: plugin.Tunnel{ID: id, Where: "container " + plugin.Short(id), Name: p.Cfg.TunnelName, Endpoints: ep, Reused: true,
		SauceID: sauceID(ctx, p.eng, id)}}, nil
}

// isGone reports whether a wait ended because the container went away.
func isGone(err error) bool {
	var ex *plugin.ExitedError
	return engine.IsNotFound(err) || errors.As(err, &ex) && ex.ExitCode == -1
}

// remove stops a container gracefully within grace, then removes it.
func (p *Backend) remove(ctx context.Context, id string, grace time.Duration) error {
	if _, err := p.eng.StopContainer(ctx, id, grace); err != nil {
		p.Log.WithError(err).WithField("container", plugin.Short(id)).Debug("could not stop container")
	}
	return p.eng.RemoveContainer(ctx, id)
}

// nameTaken explains a container-name conflict.
func (p *Backend) nameTaken(ctx context.Context, name string, err error) error {
	c, ierr := p.eng.InspectContainer(ctx, name)
	if ierr == nil && c.Labels[plugin.LabelManaged] != "true" {
		return fmt.Errorf("container name %s is taken by a container this plugin did not start; set container_name to another name, or remove that container: %w", name, err)
	}
	return fmt.Errorf("another start of tunnel %s created its container first: %w: %w", p.Cfg.TunnelName, err, errLostRace)
}

// errLostRace marks a start that a concurrent start of its tunnel beat to
// creating the container; it waits for that tunnel instead.
var errLostRace = errors.New("waiting for it")

// checkHostPort fails early, naming the setting, when the fixed host port
// the API is to be published on is already taken. The engine itself does
// not always refuse: two containers may bind the same address.
func (p *Backend) checkHostPort(ctx context.Context, pl Placement, owner *engine.Container) error {
	if pl.NetworkMode == "host" && onHostNetwork(owner) && !strings.HasPrefix(p.access.Host, "tcp://") {
		l, err := net.Listen("tcp", net.JoinHostPort(p.Cfg.APIBind, strconv.Itoa(pl.APIPort)))
		if err != nil {
			return fmt.Errorf("port %d (%s) on this host is already in use, and SC's API listens there in the host's network; set api_host_port to a free port, or 0 to pick one", pl.APIPort, p.Cfg.APIBind)
		}
		l.Close()
		return nil
	}
	if pl.Publish == nil || pl.Publish.Port == 0 {
		return nil
	}
	port := pl.Publish.Port
	taken := fmt.Errorf("host port %d (%s) is already in use; set api_host_port to a free port, or 0 to pick one", port, pl.Publish.IP)
	all, err := p.eng.ListContainers(ctx, nil)
	if err != nil {
		return err
	}
	for _, c := range all {
		for _, hp := range c.Ports {
			if hp.Port == port && (hp.IP == pl.Publish.IP || hp.IP == "" || hp.IP == "0.0.0.0" || pl.Publish.IP == "0.0.0.0") {
				return fmt.Errorf("%w by container %s", taken, strings.Join(c.Names, ","))
			}
		}
	}
	if onHostNetwork(owner) && !strings.HasPrefix(p.access.Host, "tcp://") {
		l, err := net.Listen("tcp", net.JoinHostPort(pl.Publish.IP, strconv.Itoa(port)))
		if err != nil {
			return taken
		}
		l.Close()
	}
	return nil
}

// freeHostPort returns a port free on addr now.
func freeHostPort(addr string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		return 0, fmt.Errorf("pick a free port for SC's API: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// sauceTags is where Sauce's Docker page points for the SC image's tags.
const sauceTags = "https://hub.docker.com/r/saucelabs/sauce-connect/tags"

// ensureImage makes sure the SC image is on the engine, per the pull
// setting, and returns what the start reads of it. A pull counts against
// ready_timeout (deadline): a registry that stalls mid-layer must not hang
// the step.
func (p *Backend) ensureImage(ctx context.Context, deadline time.Time) (engine.Image, error) {
	img := p.Cfg.Image
	if p.Cfg.Pull != plugin.PullAlways {
		found, err := p.eng.InspectImage(ctx, img)
		if !engine.IsNotFound(err) {
			return found, err
		}
		if p.Cfg.Pull == plugin.PullNever {
			return found, fmt.Errorf("image %s is not on the docker engine and pull is never; load the image first, or set pull to if-not-exists", img)
		}
	}
	began := p.Opt.Now()
	pctx, cancel := context.WithDeadlineCause(ctx, deadline, errPullTimeout)
	defer cancel()
	if err := p.pull(pctx); err != nil {
		if errors.Is(context.Cause(pctx), errPullTimeout) {
			return engine.Image{}, &plugin.TimeoutError{Awaited: "the pull of image " + img + " (check the registry, or raise ready_timeout for a slow one)", After: p.Opt.Now().Sub(began), Last: err.Error()}
		}
		return engine.Image{}, err
	}
	return p.eng.InspectImage(ctx, img)
}

// errPullTimeout ends a pull that ready_timeout cut short.
var errPullTimeout = errors.New("ready_timeout reached during the pull")

// pull pulls SC's image, with the registry login when one is set.
func (p *Backend) pull(ctx context.Context) error {
	img := p.Cfg.Image
	p.Log.WithField("image", img).Info("pulling image")
	// Engines report a refused registry login as an internal error (20.10:
	// HTTP 500), so the hint names everything a failed pull may need.
	var auth *engine.RegistryAuth
	if a := p.Cfg.RegistryAuth; a != nil {
		auth = &engine.RegistryAuth{Username: a.Username, Password: a.Password}
	}
	if err := p.eng.PullImage(ctx, img, auth, p.Opt.Out); err != nil {
		if engine.IsNotFound(err) {
			return fmt.Errorf("%w: the registry has no image %s (no such tag or digest); set image to a published tag (Sauce's are listed at %s) or a digest", err, img, sauceTags)
		}
		return fmt.Errorf("%w; check the image name and, for a private registry or mirror, registry_username and registry_password", err)
	}
	return nil
}
