package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// PollPeriod is how often the plugin asks SC's /readyz where it polls: in
// action wait, and beside the Kubernetes readiness watch.
const PollPeriod = 50 * time.Millisecond

// PollReady asks url (an SC /readyz) every PollPeriod, each request
// bounded by ProbeTimeout, until it answers 200 (true) or ctx ends (false).
// last says what the final failed request got.
func (s *Session) PollReady(ctx context.Context, url string) (last string, ready bool) {
	tick := time.NewTicker(PollPeriod)
	defer tick.Stop()
	last = "no answer yet"
	for {
		pctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
		code, _, err := s.Get(pctx, url)
		cancel()
		switch {
		case err == nil && code == http.StatusOK:
			return last, true
		case err == nil:
			last = fmt.Sprintf("/readyz answered %d", code)
		case ctx.Err() == nil:
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return last, false
		case <-tick.C:
		}
	}
}

// AwaitSidecar is action wait: the pipeline runs Sauce Connect itself (a
// Harness Background step, a Drone service, a sidecar in the build pod, so
// that SC shares the app's localhost) and the plugin waits, bounded by
// ready_timeout, until SC's /readyz at api_url answers 200, then hands the
// address on as start does. watch, when the backend can see SC's
// container, follows it and returns why SC is gone (after printing SC's
// last lines), so that a failed SC fails the step at once instead of at
// ready_timeout; it returns nil when ctx ends first.
func (s *Session) AwaitSidecar(ctx context.Context, watch func(context.Context) error) (*Tunnel, error) {
	began := s.Opt.Now()
	url := s.Cfg.APIURL
	parent := ctx
	ctx, cancel := context.WithTimeoutCause(ctx, s.Cfg.ReadyTimeout, errWaitTimeout)
	defer cancel()
	ctx, gone := context.WithCancelCause(ctx)
	defer gone(nil)
	watched := make(chan struct{})
	if watch == nil {
		close(watched)
	} else {
		go func() {
			defer close(watched)
			if err := watch(ctx); err != nil {
				gone(err)
			}
		}()
	}
	s.Log.Infof("waiting for sauce connect at %s (up to %s)", url, s.Cfg.ReadyTimeout)
	last, ready := s.PollReady(ctx, url+"/readyz")
	if ready {
		gone(nil)
	}
	<-watched
	if !ready {
		err := context.Cause(ctx)
		if errors.Is(err, errWaitTimeout) {
			return nil, &TimeoutError{Awaited: "sauce connect's API at " + url + " to answer /readyz with 200 (is SC running there, with SAUCE_API_ADDRESS set?)", After: s.Opt.Now().Sub(began), Last: last}
		}
		return nil, err
	}
	t := &Tunnel{Where: "at " + url, Name: s.tunnelNameAt(ctx, url), Endpoints: Endpoints{Container: url, Probe: url}}
	if _, ok := SauceAPIFor(s.Cfg); ok {
		// With the credentials, Sauce confirms the pipeline's own SC too.
		if err := s.Confirm(parent, t, began.Add(s.Cfg.ReadyTimeout)); err != nil {
			return nil, err
		}
	}
	t.ReadyIn = s.Opt.Now().Sub(began)
	s.Report(t)
	return t, nil
}

var errWaitTimeout = errors.New("ready_timeout reached")

// tunnelNameAt reads the tunnel's name from SC's /info (SC5's tunnel_name),
// else takes the setting's.
func (s *Session) tunnelNameAt(ctx context.Context, url string) string {
	ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ProbeTimeout)
	defer cancel()
	var info struct {
		TunnelName string `json:"tunnel_name"`
	}
	code, body, err := s.Get(ictx, url+"/info")
	switch {
	case err != nil || code != http.StatusOK || json.Unmarshal([]byte(body), &info) != nil || info.TunnelName == "":
	case sanitizeName(info.TunnelName, 200) != info.TunnelName:
		// It goes into the step outputs: no line breaks, no '=' of its own.
		s.Log.Warnf("SC's /info names the tunnel %q, which is no tunnel name (letters, digits, '.', '_', '-'); the outputs carry %s", info.TunnelName, s.Cfg.TunnelName)
	default:
		return info.TunnelName
	}
	return s.Cfg.TunnelName
}
