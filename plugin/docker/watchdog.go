package docker

import (
	"cmp"
	"context"
	"flag"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

// guard is what a watchdog guards SC by: the anchor, whose removal means
// the pipeline ended, and the runner's networks SC joined.
type guard struct {
	Anchor   string
	Networks []string
}

// guardOf decides the watchdog's anchor from the plugin's own container
// (proven, see whereAmI) and the container whose network namespace it uses:
//   - in a borrowed namespace (act runs an action with network_mode
//     container:<job>), the namespace's owner, which lives as long as the job;
//   - on GitHub Actions none: the runner removes an action's container
//     right after its step (the hosted runner with --rm, act explicitly), so
//     the post step and max_lifetime end the tunnel;
//   - a --rm container, or the host, has none either;
//   - else the plugin's own step container, which Drone and Harness keep
//     until the stage ends.
//
// The networks are those SC joined because the owner is on them.
func guardOf(c plugin.Config, self, owner *engine.Container, pl placement) guard {
	var g guard
	switch {
	case self == nil:
	case owner != nil && owner.ID != self.ID:
		g.Anchor = owner.ID
	case c.Pipeline.Platform() == plugin.PlatformGitHub, self.AutoRemove:
	default:
		g.Anchor = self.ID
	}
	if owner != nil {
		for _, a := range pl.Networks {
			if slices.Contains(userNetworks(owner), a.Network) {
				g.Networks = append(g.Networks, a.Network)
			}
		}
	}
	return g
}

// watchdogCerts is where the watchdog finds the engine's TLS files.
const watchdogCerts = "/run/drone-sauce-connect/docker-certs"

// watchdogSpec is the watchdog container: the plugin's own image (by
// content ID, so it is this very plugin whatever the tag) running its reap
// command, removed by the engine when it exits, reaching the engine as the
// plugin does: through the socket the plugin has (at the same path), on the
// engine's default bridge (for Sauce Labs' REST API, see Backstop); or over
// TCP on the plugin's network, with the
// plugin's TLS files copied in before it starts (the private key 0400, never
// in its environment, labels or command line). It is pure and golden-tested.
func watchdogSpec(c plugin.Config, self engine.Container, g guard, scID string, deadline, now time.Time, access engine.Access) (engine.ContainerSpec, bool) {
	args := WatchdogArgs{Tunnel: c.TunnelName, Target: scID, Anchor: g.Anchor, Deadline: deadline, Networks: g.Networks,
		StopTimeout: c.StopTimeout, LogFormat: string(c.LogFormat), RESTURL: c.RESTURL}
	s := engine.ContainerSpec{
		// Its own name per SC container: a watchdog of an earlier attempt may
		// still be exiting, or left created after a kill.
		Name:       c.ContainerName + "-watchdog-" + engine.ShortID(scID),
		Image:      cmp.Or(self.ImageID, self.Image),
		Cmd:        args.Flags(),
		AutoRemove: true,
	}
	labels := plugin.Labels(c, now, deadline.Add(c.StopTimeout+plugin.CleanupTimeout), platformLabels(&self))
	labels[plugin.LabelRole] = plugin.RoleWatchdog
	s.Labels = labels
	s.Env = []engine.EnvVar{{Name: "DOCKER_HOST", Value: access.Host}}
	if sock, ok := strings.CutPrefix(access.Host, "unix://"); ok {
		src, found := self.Mounts[sock]
		if !found {
			return s, false
		}
		s.Mounts = []engine.Mount{{Source: src, Target: sock}}
		// The engine's default bridge: egress to Sauce Labs' REST API, for
		// the backstop, and no runner's network.
		s.NetworkMode = "bridge"
		return s, true
	}
	// A tcp:// engine is reached over the network the plugin uses.
	s.NetworkMode = self.NetworkMode
	if t := access.TLS; t != nil {
		s.Env = append(s.Env, engine.EnvVar{Name: "DOCKER_CERT_PATH", Value: watchdogCerts})
		if t.Verify {
			s.Env = append(s.Env, engine.EnvVar{Name: "DOCKER_TLS_VERIFY", Value: "1"})
		}
		for i, content := range [][]byte{t.CA, t.Cert, t.Key} {
			mode := int64(0o444)
			if engine.TLSFileNames[i] == "key.pem" {
				mode = 0o400
			}
			s.Files = append(s.Files, engine.File{Path: watchdogCerts + "/" + engine.TLSFileNames[i], Mode: mode, Content: content})
		}
	}
	return s, true
}

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
	b.log.WithField("container", engine.ShortID(scID)).Debug(trace(spec))
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

// noWatchdog is a channel that always yields nil: no watchdog to wait for.
var noWatchdog = func() <-chan *watchdog {
	c := make(chan *watchdog)
	close(c)
	return c
}()
