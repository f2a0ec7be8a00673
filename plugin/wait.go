package plugin

import (
	"context"
)

// APITarget is an SC reached at its API's URL (action wait, a Service),
// and, when the backend can see its container, followed by watch, which
// returns why SC is gone, or nil when ctx ends first.
func APITarget(s *Session, url string, watch func(context.Context) error) ReadyTarget {
	return apiTarget{s: s, url: url, watch: watch}
}

type apiTarget struct {
	s     *Session
	url   string
	watch func(context.Context) error
}

// Probe asks /readyz.
func (t apiTarget) Probe(ctx context.Context) (int, error) {
	return t.s.Readyz(ctx, t.url)
}

// Watch tells when SC is gone, as watch finds.
func (t apiTarget) Watch(ctx context.Context) <-chan Sign {
	if t.watch == nil {
		return nil
	}
	out := make(chan Sign, 1)
	go func() {
		defer close(out)
		if err := t.watch(ctx); err != nil {
			out <- Sign{Gone: err}
		}
	}()
	return out
}

// AwaitSidecar is action wait: the pipeline runs Sauce Connect itself (a
// Harness Background step, a Drone service, a sidecar in the build pod, so
// that SC shares the app's localhost) and the plugin waits, bounded by
// the ready_timeout ctx carries, until SC's /readyz at api_url answers 200, then hands the
// address on as start does. watch, when the backend can see SC's
// container, follows it and returns why SC is gone (after printing SC's
// last lines), so that a failed SC fails the step at once instead of at
// ready_timeout.
func (s *Session) AwaitSidecar(ctx context.Context, watch func(context.Context) error) (*Tunnel, error) {
	began := s.Opt.Now()
	url := s.Cfg.APIURL
	s.Log.Infof("waiting for sauce connect at %s (up to %s)", url, s.Cfg.ReadyTimeout)
	awaited := "sauce connect's API at " + url + " to answer /readyz with 200 (is SC running there, with SAUCE_API_ADDRESS set?)"
	if err := WaitReady(ctx, apiTarget{s: s, url: url, watch: watch}, awaited); err != nil {
		return nil, err
	}
	info, ierr := s.info(context.WithoutCancel(ctx), url)
	t := &Tunnel{Kind: "at", Ref: url, Name: s.tunnelNameIn(info), Endpoints: Endpoints{Container: url, Probe: url}}
	if _, ok := restClientFor(s.Cfg); ok {
		// With the credentials, Sauce confirms the pipeline's own SC too.
		if err := s.confirm(ctx, t, func() (scInfo, error) { return info, ierr }); err != nil {
			return nil, err
		}
	}
	t.ReadyIn = s.Opt.Now().Sub(began)
	s.Report(t)
	return t, nil
}

// tunnelNameIn is the tunnel's name as SC's /info gives it (SC5's
// tunnel_name), else the setting's.
func (s *Session) tunnelNameIn(info scInfo) string {
	switch {
	case info.TunnelName == "":
	case sanitizeName(info.TunnelName, 200) != info.TunnelName:
		// It goes into the step outputs: no line breaks, no '=' of its own.
		s.Log.Warnf("SC's /info names the tunnel %q, which is no tunnel name (letters, digits, '.', '_', '-'); the outputs carry %s", info.TunnelName, s.Cfg.TunnelName)
	default:
		return info.TunnelName
	}
	return s.Cfg.TunnelName
}
