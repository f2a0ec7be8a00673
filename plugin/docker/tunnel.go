package docker

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
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

// tunnelIn is the tunnel in SC container id, its API at ep.
func (b *backend) tunnelIn(id string, ep plugin.Endpoints) plugin.Tunnel {
	return plugin.Tunnel{ID: id, Kind: "container", Ref: engine.ShortID(id), Name: b.cfg.TunnelName, Endpoints: ep}
}

// inspectState returns a func reading container id's state.
func (b *backend) inspectState(id string) func(ctx context.Context) (engine.State, error) {
	return func(ctx context.Context) (engine.State, error) {
		c, err := b.eng.InspectContainer(ctx, id)
		return c.State, err
	}
}

// tunnelLabels select the SC containers of one tunnel.
func tunnelLabels(tunnel string) map[string]string {
	return map[string]string{plugin.LabelManaged: "true", plugin.LabelTunnel: tunnel, plugin.LabelRole: plugin.RoleTunnel}
}

// watchdogLabels select the watchdogs of one tunnel.
func watchdogLabels(tunnel string) map[string]string {
	return map[string]string{plugin.LabelManaged: "true", plugin.LabelTunnel: tunnel, plugin.LabelRole: plugin.RoleWatchdog}
}

// mine are the SC containers of tunnel among all containers.
func mine(all []engine.Summary, tunnel string) []engine.Summary {
	var out []engine.Summary
	for _, c := range all {
		if engine.HasLabels(c.Labels, tunnelLabels(tunnel)) {
			out = append(out, c)
		}
	}
	return out
}

// isGone reports whether a wait ended because the container went away.
func isGone(err error) bool {
	var ex *plugin.ExitedError
	return engine.IsNotFound(err) || errors.As(err, &ex) && ex.ExitCode == -1
}

// remove stops a container gracefully within grace, then removes it, even
// when ctx has ended: it is cleanup.
func (b *backend) remove(ctx context.Context, id string, grace time.Duration) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace+plugin.CleanupTimeout)
	defer cancel()
	if _, err := b.eng.StopContainer(ctx, id, grace); err != nil {
		b.log.WithError(err).WithField("container", engine.ShortID(id)).Debug("could not stop container")
	}
	return b.eng.RemoveContainer(ctx, id)
}

// sauceIDFile is where, in SC's own container, the plugin records the
// tunnel's ID at Sauce Labs once Sauce confirmed it: a container's labels
// are fixed at its creation, and the stop step, the watchdog and a later
// start read it there (the engine's archive API reads an ended
// container's files too).
const sauceIDFile = "/run/drone-sauce-connect/sauce-tunnel-id"

// recordSauceID writes the confirmed tunnel's Sauce Labs ID into SC's
// container; without it the backstop deletes nothing.
func (b *backend) recordSauceID(ctx context.Context, t plugin.Tunnel) {
	if t.SauceID == "" {
		return
	}
	err := b.eng.PutFiles(ctx, t.ID, []engine.File{{Path: sauceIDFile, Mode: 0o444, Content: []byte(t.SauceID)}})
	if err != nil {
		b.log.Warnf("could not record the tunnel's Sauce Labs ID in its container (%v); if SC does not close the tunnel itself, nothing deletes it at Sauce Labs", err)
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
func (b *backend) tail(ctx context.Context, id string) string {
	var buf bytes.Buffer
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := b.eng.ContainerLogs(ctx, id, engine.LogsOptions{Tail: strconv.Itoa(plugin.TailLines)}, &buf, &buf); err != nil {
		b.log.WithError(err).Debug("could not read sauce connect's log")
	}
	return buf.String()
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// noWatchdogMeans is what a missing watchdog leaves in place.
const noWatchdogMeans = "the tunnel is removed by the stop step or when max_lifetime passes"

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

// containers lists this tunnel's SC containers.
func (b *backend) containers(ctx context.Context) ([]engine.Summary, error) {
	return b.eng.ListContainers(ctx, tunnelLabels(b.cfg.TunnelName))
}
