package docker

import (
	"syscall"

	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/backoff"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

// fakeTarget becomes ready (its probe answers 200) after readyAfter.
type fakeTarget struct {
	events  chan engine.Event
	errs    chan error
	hint    chan struct{}
	ready   atomic.Bool
	running atomic.Bool
	probes  atomic.Int32
	exit    int
}

func newFake() *fakeTarget {
	f := &fakeTarget{events: make(chan engine.Event, 4), errs: make(chan error, 1), hint: make(chan struct{}, 1)}
	f.running.Store(true)
	return f
}

func (f *fakeTarget) target() scTarget {
	return scTarget{
		events: f.events, errs: f.errs, hint: f.hint,
		inspect: func(context.Context) (engine.State, error) {
			return engine.State{Running: f.running.Load(), ExitCode: f.exit}, nil
		},
		probe: func(context.Context) (int, error) {
			f.probes.Add(1)
			if f.ready.Load() {
				return http.StatusOK, nil
			}
			return http.StatusServiceUnavailable, nil
		},
	}
}

func TestWaitReadyByProbe(t *testing.T) {
	f := newFake()
	time.AfterFunc(300*time.Millisecond, func() { f.ready.Store(true) })
	began := time.Now()
	if err := waitWithin(f.target(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	// Readiness is noticed within one probe interval (the cap) of becoming ready.
	if late := time.Since(began) - 300*time.Millisecond; late > plugin.ProbePolicy.Max+50*time.Millisecond {
		t.Errorf("noticed %s after ready; the probe cap is %s", late, plugin.ProbePolicy.Max)
	}
}

// TestWaitReadyByHintProbesAtOnce: SC's ready line makes the wait probe at
// once. The regular probes after the first are set to come only after the
// timeout, so only the hint can find readiness.
func TestWaitReadyByHintProbesAtOnce(t *testing.T) {
	f := newFake()
	go func() {
		time.Sleep(50 * time.Millisecond)
		f.ready.Store(true)
		f.hint <- struct{}{}
	}()
	target := f.target()
	target.pace = &backoff.Policy{First: time.Hour}
	if err := waitWithin(target, 2*time.Second); err != nil {
		t.Fatalf("the hint did not probe: %v", err)
	}
	if n := f.probes.Load(); n != 2 {
		t.Errorf("%d probes, want the first (at once) and the one the hint made", n)
	}
}

func TestWaitReadyByHealthEvent(t *testing.T) {
	f := newFake()
	f.events <- engine.Event{Action: "health_status", Health: "healthy"}
	if err := waitWithin(f.target(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestWaitFailsAtOnceWhenSCExits(t *testing.T) {
	f := newFake()
	f.exit = 3
	time.AfterFunc(100*time.Millisecond, func() {
		f.running.Store(false)
		f.events <- engine.Event{Action: "die", ExitCode: 3}
	})
	began := time.Now()
	err := waitWithin(f.target(), 10*time.Second)
	var ex *plugin.ExitedError
	if !errors.As(err, &ex) || ex.ExitCode != 3 {
		t.Fatalf("got %v, want exit code 3", err)
	}
	if time.Since(began) > time.Second {
		t.Errorf("took %s to notice the exit", time.Since(began))
	}
}

func TestWaitFallsBackToInspectWhenEventsBreak(t *testing.T) {
	f := newFake()
	f.exit = 1
	f.errs <- errors.New("stream cut")
	time.AfterFunc(100*time.Millisecond, func() { f.running.Store(false) })
	err := waitWithin(f.target(), 10*time.Second)
	var ex *plugin.ExitedError
	if !errors.As(err, &ex) || ex.ExitCode != 1 {
		t.Fatalf("got %v, want an exit found by inspecting", err)
	}
}

func TestWaitTimeoutSaysWhatAndHowLong(t *testing.T) {
	f := newFake()
	err := waitWithin(f.target(), 300*time.Millisecond)
	var to *plugin.TimeoutError
	if !errors.As(err, &to) {
		t.Fatalf("got %v, want a timeout", err)
	}
	for _, want := range []string{"not ready after 3", "GET fake/readyz to answer 200", "last probe: /readyz answered HTTP 503", "ready_timeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
	if plugin.ExitCode(err) != plugin.ExitTimeout {
		t.Errorf("exit code %d", plugin.ExitCode(err))
	}
	if n := f.probes.Load(); n < 3 {
		t.Errorf("only %d probes in 300ms", n)
	}
}

func TestWaitEndsWithTheSignal(t *testing.T) {
	f := newFake()
	ctx, cancel := context.WithCancelCause(context.Background())
	time.AfterFunc(50*time.Millisecond, func() { cancel(&plugin.SignalError{Signal: syscall.SIGTERM}) })
	ctx, cancelT := context.WithTimeoutCause(ctx, 10*time.Second, plugin.ErrReadyTimeout)
	defer cancelT()
	err := plugin.WaitReady(ctx, f.target(), "GET fake/readyz to answer 200")
	if plugin.ExitCode(err) != 143 {
		t.Errorf("got %v (exit %d), want exit 143", err, plugin.ExitCode(err))
	}
}

// waitWithin is plugin.WaitReady on the target within ready_timeout d.
func waitWithin(t scTarget, d time.Duration) error {
	ctx, cancel := context.WithTimeoutCause(context.Background(), d, plugin.ErrReadyTimeout)
	defer cancel()
	return plugin.WaitReady(ctx, t, "GET fake/readyz to answer 200")
}
