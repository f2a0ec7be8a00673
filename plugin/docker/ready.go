package docker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/backoff"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

// inspectEvery paces liveness checks when the event stream is broken.
const inspectEvery = 500 * time.Millisecond

// scTarget is one SC container awaited (plugin.WaitReady): its engine's
// events (a death, an OOM kill, a health check's verdict), its state when
// the stream breaks, its log's ready line, and its /readyz.
type scTarget struct {
	// events and errs are the container's events (onlyOf) and the
	// stream's failure; nil streams mean the state is inspected instead.
	events <-chan engine.Event
	errs   <-chan error
	// hint fires when SC's log says the tunnel is up.
	hint <-chan struct{}
	// inspect reads the container's state.
	inspect func(ctx context.Context) (engine.State, error)
	// probe asks SC's /readyz.
	probe func(ctx context.Context) (int, error)
	// pace overrides plugin.ProbePolicy (tests).
	pace *backoff.Policy
}

// Probe asks SC's /readyz once.
func (t scTarget) Probe(ctx context.Context) (int, error) { return t.probe(ctx) }

// ProbePace is the probes' pace.
func (t scTarget) ProbePace() backoff.Policy {
	if t.pace != nil {
		return *t.pace
	}
	return plugin.ProbePolicy
}

// Watch turns the engine's word on SC into signs, until ctx ends.
func (t scTarget) Watch(ctx context.Context) <-chan plugin.Sign {
	out := make(chan plugin.Sign)
	go func() {
		defer close(out)
		send := func(s plugin.Sign) bool {
			select {
			case out <- s:
				return true
			case <-ctx.Done():
				return false
			}
		}
		events, errs := t.events, t.errs
		var inspect <-chan time.Time
		if events == nil {
			inspect = time.Tick(inspectEvery)
		}
		for {
			var s plugin.Sign
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-events:
				if !ok {
					events, inspect = nil, time.Tick(inspectEvery)
					continue
				}
				s = t.judge(ctx, ev)
			case err := <-errs:
				// The stream broke (an engine restart, a proxy cut): inspect instead.
				errs, events, inspect = nil, nil, time.Tick(inspectEvery)
				if err != nil && !errors.Is(err, context.Canceled) {
					s.Note = "event stream lost, inspecting instead"
				}
			case <-inspect:
				s.Gone = t.alive(ctx)
			case <-t.hint:
				s.Hint = true
			}
			if s != (plugin.Sign{}) && (!send(s) || s.Gone != nil || s.Ready) {
				return
			}
		}
	}()
	return out
}

// judge reads one of SC's events.
func (t scTarget) judge(ctx context.Context, ev engine.Event) plugin.Sign {
	switch ev.Action {
	case "die", "destroy":
		// Inspect for the OOM flag and the final code; the event has the code too.
		if err := t.alive(ctx); err != nil {
			return plugin.Sign{Gone: err}
		}
		return plugin.Sign{Gone: &plugin.ExitedError{ExitCode: ev.ExitCode}}
	case "oom":
		return plugin.Sign{Gone: &plugin.ExitedError{ExitCode: 137, OOMKilled: true}}
	case "health_status":
		return plugin.Sign{Ready: ev.Health == "healthy"}
	}
	return plugin.Sign{}
}

// alive inspects SC: an error once it is not running.
func (t scTarget) alive(ctx context.Context) error {
	st, err := t.inspect(ctx)
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

// readyz returns a probe of SC's API at api.
func readyz(s *plugin.Session, api string) func(ctx context.Context) (int, error) {
	return func(ctx context.Context) (int, error) { return s.Readyz(ctx, api) }
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
