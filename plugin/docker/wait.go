package docker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

// Probe backoff: the first probe comes soon after start, then the interval
// grows to a cap small enough that readiness is noticed within ~100 ms.
const (
	probeFirst  = 20 * time.Millisecond
	probeCap    = 100 * time.Millisecond
	probeGrowth = 1.5
	// inspectEvery paces liveness checks when the event stream is broken.
	inspectEvery = 500 * time.Millisecond
)

// Target is what the readiness wait watches: one SC container.
type Target struct {
	// Events are the container's lifecycle events; Errs reports a broken stream.
	Events <-chan engine.Event
	Errs   <-chan error
	// Inspect returns the container's state (the fallback liveness check).
	Inspect func(ctx context.Context) (engine.State, error)
	// Probe asks SC whether it is ready: the HTTP status of GET /readyz.
	Probe func(ctx context.Context) (int, error)
	// Hint fires when SC's log says the tunnel is up, to probe at once.
	Hint <-chan struct{}
	// Awaited describes what is probed, for the timeout message.
	Awaited string
	// ProbeFirst and ProbeCap override the probe backoff (tests).
	ProbeFirst, ProbeCap time.Duration
}

// WaitReady blocks until the target is ready (GET /readyz answers 200, or
// the engine reports the container healthy), the container stops, the
// timeout passes, or ctx ends. It never sleeps blindly: it selects on the
// events, the probe timer, the log hint and the deadline.
func WaitReady(ctx context.Context, t Target, timeout time.Duration) error {
	began := time.Now()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	interval, limit := cmp.Or(t.ProbeFirst, probeFirst), cmp.Or(t.ProbeCap, probeCap)
	tick := time.NewTimer(interval)
	defer tick.Stop()
	w := &readyWait{t: t, last: "no probe yet"}
	events, errs := t.Events, t.Errs
	var inspectTick <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-deadline.C:
			return &plugin.TimeoutError{Awaited: t.Awaited, After: time.Since(began), Last: w.last}
		case ev, ok := <-events:
			if !ok {
				events, inspectTick = nil, time.Tick(inspectEvery)
			} else if done, err := w.event(ctx, ev); done {
				return err
			}
		case err := <-errs:
			// The stream broke (engine restart, proxy cut): fall back to inspecting.
			errs, events = nil, nil
			if err != nil && !errors.Is(err, context.Canceled) {
				w.last = "event stream lost, inspecting instead"
			}
			inspectTick = time.Tick(inspectEvery)
		case <-inspectTick:
			if err := w.alive(ctx); err != nil {
				return err
			}
		case <-t.Hint:
			if w.probe(ctx) {
				return nil
			}
		case <-tick.C:
			if w.probe(ctx) {
				return nil
			}
			interval = min(time.Duration(float64(interval)*probeGrowth), limit)
			tick.Reset(interval)
		}
	}
}

// readyWait is one WaitReady's view of SC: its target, and what the last
// probe said (for the timeout's message).
type readyWait struct {
	t    Target
	last string
}

// probe asks SC's /readyz once.
func (w *readyWait) probe(ctx context.Context) bool {
	pctx, cancel := context.WithTimeout(ctx, plugin.ProbeTimeout)
	defer cancel()
	code, err := w.t.Probe(pctx)
	switch {
	case err != nil:
		w.last = err.Error()
	case code == http.StatusOK:
		return true
	default:
		w.last = fmt.Sprintf("HTTP %d", code)
	}
	return false
}

// alive inspects SC: an error once it is not running.
func (w *readyWait) alive(ctx context.Context) error {
	st, err := w.t.Inspect(ctx)
	if err != nil {
		if engine.IsNotFound(err) {
			return &plugin.ExitedError{ExitCode: -1}
		}
		return fmt.Errorf("check sauce connect is running: %w", err)
	}
	if !st.Running {
		return &plugin.ExitedError{ExitCode: st.ExitCode, OOMKilled: st.OOMKilled}
	}
	return nil
}

// event judges one of SC's events: done, with the error that ends the wait
// (nil for healthy), or not done.
func (w *readyWait) event(ctx context.Context, ev engine.Event) (bool, error) {
	switch ev.Action {
	case "die", "destroy":
		// Inspect for the OOM flag and the final code; the event has the code too.
		if err := w.alive(ctx); err != nil {
			return true, err
		}
		return true, &plugin.ExitedError{ExitCode: ev.ExitCode}
	case "oom":
		return true, &plugin.ExitedError{ExitCode: 137, OOMKilled: true}
	case "health_status":
		return ev.Health == "healthy", nil
	}
	return false, nil
}

// httpProbe returns a Probe that GETs base+"/readyz".
func HTTPProbe(client *http.Client, base string) func(ctx context.Context) (int, error) {
	return func(ctx context.Context) (int, error) {
		code, _, err := plugin.APIGet(ctx, client, base+"/readyz")
		return code, err
	}
}

// onlyOf passes on the events of container id alone, until ctx ends or the
// stream closes.
func onlyOf(ctx context.Context, id string, events <-chan engine.Event) <-chan engine.Event {
	out := make(chan engine.Event)
	go func() {
		defer close(out)
		for ev := range events {
			if ev.ID != id {
				continue
			}
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}
