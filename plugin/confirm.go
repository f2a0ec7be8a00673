package plugin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/backoff"
)

// confirmFirst and confirmCap pace the polls of Sauce's tunnel list: soon
// after /readyz, then every second at most (the REST API is shared by the
// whole account, and Sauce lists a tunnel within a few seconds).
const (
	confirmFirst = 100 * time.Millisecond
	confirmCap   = time.Second
	// confirmUnreachable is how many failed connections in a row, with no
	// answer yet, make the REST API unreachable for this start.
	confirmUnreachable = 3
	// confirmCall bounds one call: a firewall that drops the packets must
	// not hold the start until ready_timeout.
	confirmCall = 5 * time.Second
)

// Confirm asks Sauce Labs whether the tunnel SC calls ready is running
// there: SC's /readyz can answer 200 before Sauce lists the tunnel, and
// sessions then fail with "no active tunnel found" (node-saucelabs#242). It
// polls the account's tunnels (the region's REST API or rest_url, through
// proxy_sauce), within the ready_timeout ctx carries, until one named as
// this tunnel and, where SC's /info gives it, with SC's tunnel ID, is
// running, and records its ID in t. When the API cannot be asked
// (unreachable, the credentials refused, rest_confirm false, or no answer
// at all in time) it warns once and the start goes on on SC's word; a
// tunnel that Sauce, answering, never lists in time is a TimeoutError
// naming what was listed.
func (s *Session) Confirm(ctx context.Context, t *Tunnel) error {
	return s.confirm(ctx, t, func() (scInfo, error) { return s.info(ctx, t.Endpoints.Probe) })
}

// confirm is Confirm with SC's /info read by info, only when Sauce Labs
// is asked.
func (s *Session) confirm(ctx context.Context, t *Tunnel, info func() (scInfo, error)) error {
	api, ok := restClientFor(s.Cfg)
	switch {
	case !s.Cfg.RESTConfirm:
		s.Log.Debug("rest_confirm is false: the tunnel is taken as ready on SC's word")
		return nil
	case !ok:
		s.Log.Warn("the tunnel cannot be confirmed at Sauce Labs (no credentials or region to ask its REST API with); going on with SC's word")
		return nil
	}
	q := &confirmation{api: api, name: t.Name, id: s.tunnelID(info()), seen: "no answer yet"}
	began := s.Opt.Now()
	err := backoff.Retry(ctx, backoff.Policy{First: confirmFirst, Max: confirmCap}, q.ask)
	var cannot *cannotAsk
	switch {
	case err == nil:
		t.SauceID = q.found.ID
		s.Log.Infof("tunnel %s confirmed by Sauce Labs in %s (tunnel ID %s)", t.Name, s.Opt.Now().Sub(began).Round(time.Millisecond), q.found.ID)
		return nil
	case errors.As(err, &cannot):
		s.Log.Warnf("the tunnel cannot be confirmed at Sauce Labs: %v%s; going on with SC's word", cannot.err, cannot.hint)
		return nil
	case !errors.Is(context.Cause(ctx), ErrReadyTimeout) && !errors.Is(context.Cause(ctx), context.DeadlineExceeded):
		return context.Cause(ctx)
	case !q.answered:
		s.Log.Warnf("the tunnel cannot be confirmed at Sauce Labs: no answer from its REST API by ready_timeout (last: %s)%s; going on with SC's word", q.seen, unreachableHint)
		return nil
	}
	return &TimeoutError{Awaited: "Sauce Labs to list tunnel " + t.Name + idNote(q.id) + " as running (SC's /readyz said ready)", After: s.Opt.Now().Sub(began), Last: q.seen}
}

// unreachableHint is what to do about a REST API that gives no answer.
const unreachableHint = " (set rest_url or proxy_sauce if Sauce is reached another way, or rest_confirm: false)"

// confirmation is one start's questions to Sauce's tunnel list.
type confirmation struct {
	api      restClient
	name, id string
	// seen is what the last answer showed; answered whether one came.
	seen     string
	answered bool
	failures int
	found    *restTunnel
}

// cannotAsk ends a confirmation that cannot be had: the start goes on.
type cannotAsk struct {
	err  error
	hint string
}

func (c *cannotAsk) Error() string { return c.err.Error() }

// ask asks once: nil when Sauce lists the tunnel.
func (q *confirmation) ask(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, confirmCall)
	list, err := q.api.Tunnels(cctx)
	cancel()
	var re *restError
	var ue *restUnreachableError
	switch {
	case errors.As(err, &re) && re.refused():
		return backoff.Permanent(&cannotAsk{err: err, hint: serviceAccountHint})
	case (errors.As(err, &ue) || errors.As(err, &re) && re.Status >= 500) && ctx.Err() == nil:
		// No answer, or a gateway's (a proxy that cannot reach Sauce).
		if q.failures++; q.failures >= confirmUnreachable && !q.answered {
			return backoff.Permanent(&cannotAsk{err: err, hint: unreachableHint})
		}
		q.seen = err.Error()
	case err != nil && ctx.Err() == nil:
		q.failures, q.seen, q.answered = 0, err.Error(), true
	case err == nil:
		q.failures, q.answered = 0, true
		if q.found, q.seen = match(list, q.name, q.id, q.api.Username); q.found != nil {
			return nil
		}
	}
	return errors.New(q.seen)
}

// idNote names SC's tunnel ID, when it gave one.
func idNote(id string) string {
	if id == "" {
		return ""
	}
	return " (ID " + id + ")"
}

// match finds the running tunnel named name with ID id ("" for any) in
// list, or says what the list showed instead.
func match(list []restTunnel, name, id, user string) (*restTunnel, string) {
	var named, others []string
	for i, t := range list {
		switch {
		case t.Name == name && (id == "" || t.ID == id):
			return &list[i], ""
		case t.Name == name:
			named = append(named, t.ID)
		default:
			others = append(others, t.Name)
		}
	}
	if len(named) > 0 {
		return nil, fmt.Sprintf("Sauce Labs lists tunnel %s only with ID %s, not SC's %s", name, strings.Join(named, ", "), id)
	}
	if len(others) == 0 {
		return nil, fmt.Sprintf("Sauce Labs lists no running tunnel for %s", user)
	}
	return nil, fmt.Sprintf("Sauce Labs lists %d running tunnel(s) for %s, none named %s: %s", len(others), user, name, strings.Join(others, ", "))
}

// tunnelID is the tunnel ID SC reports at its /info (SC5's tunnel_id),
// "" when it gives none.
func (s *Session) tunnelID(info scInfo, err error) string {
	if err != nil {
		s.Log.Debugf("SC's /info gave no tunnel ID (%v): confirming by name alone", err)
	}
	return info.TunnelID
}

// nameCheck bounds the look for the tunnel's name at Sauce Labs.
const nameCheck = 5 * time.Second

// WarnNameInUse looks, in the background, for a running tunnel of this
// name at Sauce Labs before a new one starts: SC5 shuts the older tunnel
// of a name down when another starts, so a job still using it would lose
// it. It warns naming that tunnel; the returned func waits for the look.
// Tunnel pools share the name on purpose: none is looked for.
func (s *Session) WarnNameInUse(ctx context.Context) (wait func()) {
	api, ok := restClientFor(s.Cfg)
	if !s.Cfg.RESTConfirm || !ok || s.Cfg.TunnelPool {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), nameCheck)
		defer cancel()
		list, err := api.Tunnels(ctx)
		if err != nil {
			s.Log.Debugf("could not look for tunnel %s at Sauce Labs: %v", s.Cfg.TunnelName, err)
			return
		}
		for _, t := range list {
			if t.Name == s.Cfg.TunnelName {
				s.Log.Warnf("tunnel name %s is already in use at Sauce Labs: %s; SC5 shuts the older tunnel of a name down when another starts. "+
					"If another job still uses it, give each job its own tunnel_name (leave it unset for one per job), or set tunnel_pool: true on every tunnel that shares it",
					s.Cfg.TunnelName, t.describe(s.Opt.Now()))
			}
		}
	}()
	return func() { <-done }
}

// ExplainExit is ClassifyExit with, when the account's tunnel limit is
// reached, the account's running tunnels listed, so that the leaked ones
// can be told and ended.
func (s *Session) ExplainExit(ctx context.Context, err error, tail string) error {
	err = ClassifyExit(err, tail)
	if !errors.Is(err, errTunnelLimit) {
		return err
	}
	api, ok := restClientFor(s.Cfg)
	if !ok {
		return err
	}
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), restTimeout)
	defer cancel()
	list, lerr := api.Tunnels(lctx)
	if lerr != nil {
		return fmt.Errorf("%w\n(the account's tunnels could not be listed: %v)", err, lerr)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nthe account's running tunnels (%d):", len(list))
	now := s.Opt.Now()
	for _, t := range list {
		b.WriteString("\n  - " + t.describe(now))
	}
	fmt.Fprintf(&b, "\nend a leaked one at https://app.saucelabs.com/tunnels, or with: curl -u \"$SAUCE_USERNAME:$SAUCE_ACCESS_KEY\" -X DELETE %s/rest/v1/%s/tunnels/<id>", api.Base, api.Username)
	return fmt.Errorf("%w%s", err, b.String())
}
