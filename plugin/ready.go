package plugin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/backoff"
)

// The one readiness wait, which the Docker backend, the Kubernetes backend
// and action wait share; each supplies only its target: how SC's /readyz
// is asked, and what the backend itself learns of SC (an engine's events
// and health check, a pod's status, a container that failed).

// ReadyTarget is one SC being waited for: what its backend learns of it.
type ReadyTarget interface {
	// Watch tells, until ctx ends, what the backend learns of SC: that it
	// is ready, that it is gone for good (and why), or that its log says it
	// is up (probe now). A nil channel tells nothing.
	Watch(ctx context.Context) <-chan Sign
}

// Prober is a target whose /readyz the plugin can ask itself (not one
// reached through a Service, which routes only to pods already Ready).
type Prober interface {
	// Probe asks SC's /readyz once: 200 is ready.
	Probe(ctx context.Context) (int, error)
}

// Sign is one thing a backend learns of SC while it is awaited.
type Sign struct {
	// Ready: the backend's own check says SC is ready (a health check, a
	// pod's Ready condition).
	Ready bool
	// Gone: SC cannot become ready any more; the wait ends with it.
	Gone error
	// Hint: probe now (SC's log said the tunnel is up).
	Hint bool
	// Note replaces what the timeout's message says was seen last.
	Note string
}

// ProbePolicy paces the probes: the first soon after the start, then up to
// every 100 ms, so that readiness is noticed within about 100 ms.
var ProbePolicy = backoff.Policy{First: 20 * time.Millisecond, Max: 100 * time.Millisecond, Factor: 1.5}

// Pacer is a prober that paces its probes otherwise than ProbePolicy.
type Pacer interface {
	ProbePace() backoff.Policy
}

// ErrReadyTimeout is the cause of a context that ready_timeout ended.
var ErrReadyTimeout = errors.New("ready_timeout reached")

// WaitReady waits until t is ready (its probe answers 200, or its backend
// says so), gone, or ctx ends. awaited says what was waited for, for the
// message when ctx's deadline (ready_timeout) ends the wait: a
// TimeoutError naming what was seen last.
func WaitReady(ctx context.Context, t ReadyTarget, awaited string) error {
	began := time.Now()
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// What the probes and the backend saw last, for the timeout's message.
	lastProbe, note := "no probe yet", ""
	signs := t.Watch(wctx)
	prober, _ := t.(Prober)
	var probes <-chan probeResult
	if prober != nil {
		probes = probeUntilReady(wctx, prober)
	}
	for {
		select {
		case <-ctx.Done():
			if errors.Is(context.Cause(ctx), ErrReadyTimeout) || errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
				last := lastProbe
				if note != "" {
					last = note + "; " + lastProbe
				}
				return &TimeoutError{Awaited: awaited, After: time.Since(began), Last: last}
			}
			return context.Cause(ctx)
		case s, ok := <-signs:
			switch {
			case !ok:
				signs = nil
			case s.Gone != nil:
				return s.Gone
			case s.Ready:
				return nil
			case s.Hint && prober != nil:
				if r := probeOnce(ctx, prober); r.ready {
					return nil
				}
			case s.Note != "":
				note = s.Note
			}
		case r := <-probes:
			if r.ready {
				return nil
			}
			lastProbe = r.last
		}
	}
}

// probeResult is what one probe saw.
type probeResult struct {
	ready bool
	last  string
}

// probeUntilReady probes t on ProbePolicy's pace until it answers 200,
// reporting the failed probes (when the waiter is free to hear them) and,
// surely, the one that answers 200.
func probeUntilReady(ctx context.Context, t Prober) <-chan probeResult {
	out := make(chan probeResult)
	pace := ProbePolicy
	if p, ok := t.(Pacer); ok {
		pace = p.ProbePace()
	}
	go func() {
		_ = backoff.Retry(ctx, pace, func(ctx context.Context) error {
			r := probeOnce(ctx, t)
			if r.ready {
				select {
				case out <- r:
				case <-ctx.Done():
				}
				return nil
			}
			select {
			case out <- r:
			default:
			}
			return errors.New(r.last)
		})
	}()
	return out
}

// probeOnce asks t once, bounded by probeTimeout.
func probeOnce(ctx context.Context, t Prober) probeResult {
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	code, err := t.Probe(pctx)
	switch {
	case err != nil:
		return probeResult{last: err.Error()}
	case code == http.StatusOK:
		return probeResult{ready: true}
	}
	return probeResult{last: fmt.Sprintf("/readyz answered HTTP %d", code)}
}

// probeTimeout bounds one request to SC's API.
const probeTimeout = time.Second
