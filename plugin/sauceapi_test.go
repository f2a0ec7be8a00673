package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

func TestSauceAPIOf(t *testing.T) {
	env := []string{"SAUCE_USERNAME=alice", "SAUCE_ACCESS_KEY=k", "SAUCE_REGION=eu-central"}
	if a, ok := restClientOf(env, ""); !ok || a.Base != "https://api.eu-central-1.saucelabs.com" || a.Username != "alice" {
		t.Errorf("eu-central: %+v %v", a, ok)
	}
	if a, _ := restClientOf(append(env, "SAUCE_REGION=us-east-4"), "http://double:1/"); a.Base != "http://double:1" {
		t.Errorf("rest_url replaces the region's host, without its trailing slash: %q", a.Base)
	}
	if a, _ := restClientOf(append(env[:2:2], "SAUCE_REGION=us-east-4"), ""); a.Base != "https://api.us-east-4.saucelabs.com" {
		t.Errorf("us-east-4: %q", a.Base)
	}
	if _, ok := restClientOf([]string{"SAUCE_USERNAME=alice", "SAUCE_REGION=us-west"}, ""); ok {
		t.Error("no access key, yet an API")
	}
}

// account is an in-test Sauce REST API for one account, alice, with the
// key SECRET-KEY-1: the tunnels it lists, from listedAt on, and the
// DELETEs it answered; the lists it answered and the connections it took.
type account struct {
	mu       sync.Mutex
	tunnels  []restTunnel
	listedAt time.Time
	deleted  []string
	refuse   int // a status to answer every call with
	lists    int
	conns    atomic.Int32
}

func (a *account) serve(t *testing.T) string {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		defer a.mu.Unlock()
		if u, k, _ := r.BasicAuth(); u != "alice" || k != "SECRET-KEY-1" || a.refuse != 0 {
			http.Error(w, "no", max(a.refuse, http.StatusUnauthorized))
			return
		}
		id, one := strings.CutPrefix(r.URL.Path, "/rest/v1/alice/tunnels/")
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/rest/v1/alice/tunnels" && r.URL.Query().Get("full") == "true":
			a.lists++
			list := []restTunnel{}
			if !time.Now().Before(a.listedAt) {
				list = a.tunnels
			}
			_ = json.NewEncoder(w).Encode(list)
		case one && r.Method == http.MethodGet:
			for _, tn := range a.tunnels {
				if tn.ID == id {
					_ = json.NewEncoder(w).Encode(tn)
					return
				}
			}
			http.NotFound(w, r)
		case one && r.Method == http.MethodDelete:
			a.deleted = append(a.deleted, id)
		default:
			http.NotFound(w, r)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			a.conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestBackstopDeletesOnlyItsOwnTunnel: the backstop deletes the tunnel by
// the ID recorded at ready time, never another of the same name (a pool's,
// a colliding job's); with no ID it deletes nothing and says why; a tunnel
// Sauce closed already is left; a refused key is explained; the key is in
// no line.
func TestBackstopDeletesOnlyItsOwnTunnel(t *testing.T) {
	a := &account{tunnels: []restTunnel{{ID: "a1", Name: "ci-7", Status: "running"}, {ID: "b2", Name: "ci-7", Status: "running"}, {ID: "c3", Name: "ci-7", Status: "terminated"}}}
	url := a.serve(t)
	var out bytes.Buffer
	log := logrus.New()
	log.SetOutput(&out)
	env := []string{"SAUCE_USERNAME=alice", "SAUCE_ACCESS_KEY=SECRET-KEY-1", "SAUCE_REGION=us-west", "SAUCE_TUNNEL_POOL=true"}
	Backstop(context.Background(), log, env, url, "ci-7", "b2", "sauce connect was killed")
	if strings.Join(a.deleted, ",") != "b2" || !strings.Contains(out.String(), "tunnel ci-7 (b2) deleted at Sauce Labs") {
		t.Errorf("deleted %v:\n%s", a.deleted, out.String())
	}
	a.deleted = nil
	Backstop(context.Background(), log, env, url, "ci-7", "", "sauce connect was killed")
	if len(a.deleted) != 0 || !strings.Contains(out.String(), "its Sauce Labs ID was never recorded") {
		t.Errorf("deleted without an ID (%v):\n%s", a.deleted, out.String())
	}
	Backstop(context.Background(), log, env, url, "ci-7", "c3", "sauce connect ended with exit code 1")
	if len(a.deleted) != 0 || !strings.Contains(out.String(), "Sauce Labs had already closed tunnel ci-7 (c3, status terminated)") {
		t.Errorf("a closed tunnel was deleted again (%v):\n%s", a.deleted, out.String())
	}
	Backstop(context.Background(), log, env, url, "ci-7", "gone", "sauce connect was killed")
	if len(a.deleted) != 0 || !strings.Contains(out.String(), "Sauce Labs has no tunnel ci-7 (gone) left") {
		t.Errorf("an unknown ID:\n%s", out.String())
	}
	Backstop(context.Background(), log, []string{"SAUCE_USERNAME=alice", "SAUCE_ACCESS_KEY=WRONG", "SAUCE_REGION=us-west"}, url, "ci-7", "a1", "sauce connect was killed")
	if !strings.Contains(out.String(), "401 Unauthorized (a service account's key cannot manage tunnels") {
		t.Errorf("a refused key is not explained:\n%s", out.String())
	}
	if strings.Contains(out.String(), "SECRET-KEY-1") {
		t.Errorf("the access key was printed:\n%s", out.String())
	}
}

// confirmSession is a session whose SC answers /info with scID, asking the
// REST API at url.
func confirmSession(t *testing.T, url, scID string, out *bytes.Buffer) (*Session, *Tunnel) {
	t.Helper()
	sc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"tunnel_id": scID, "tunnel_name": "ci-7"})
	}))
	t.Cleanup(sc.Close)
	set := DefaultSettings()
	set.Username, set.AccessKey, set.Region, set.TunnelName, set.RESTURL = "alice", "SECRET-KEY-1", "us-west", "ci-7", url
	c, err := set.Config(Pipeline{}, "h", "r")
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(out)
	return NewSession(c, Options{Out: out, Log: log}), &Tunnel{Name: "ci-7", Endpoints: Endpoints{Probe: sc.URL}}
}

// TestConfirm: the start waits until Sauce lists the tunnel with SC's ID
// (Sauce may list it after SC's /readyz), records the ID and says how long
// it took; a tunnel Sauce never lists, or lists only under another ID, is a
// timeout naming what was listed; a refused key or an unreachable API is
// one warning, and the start goes on.
func TestConfirm(t *testing.T) {
	a := &account{tunnels: []restTunnel{{ID: "x9", Name: "other", Status: "running"}, {ID: "a1", Name: "ci-7", Status: "running"}}, listedAt: time.Now().Add(300 * time.Millisecond)}
	var out bytes.Buffer
	s, tun := confirmSession(t, a.serve(t), "a1", &out)
	began := time.Now()
	if err := confirmWithin(s, tun, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if tun.SauceID != "a1" || time.Since(began) < 300*time.Millisecond || !strings.Contains(out.String(), "tunnel ci-7 confirmed by Sauce Labs in") {
		t.Errorf("confirmed %q after %s:\n%s", tun.SauceID, time.Since(began), out.String())
	}

	s, tun = confirmSession(t, a.serve(t), "zz", &out)
	err := confirmWithin(s, tun, 400*time.Millisecond)
	var to *TimeoutError
	if !errors.As(err, &to) || !strings.Contains(err.Error(), "Sauce Labs to list tunnel ci-7 (ID zz)") || !strings.Contains(err.Error(), "lists tunnel ci-7 only with ID a1, not SC's zz") {
		t.Errorf("another ID: %v", err)
	}
	none := &account{tunnels: []restTunnel{{ID: "x9", Name: "other", Status: "running"}}}
	s, tun = confirmSession(t, none.serve(t), "", &out)
	if err := confirmWithin(s, tun, 300*time.Millisecond); err == nil || !strings.Contains(err.Error(), "1 running tunnel(s) for alice, none named ci-7: other") {
		t.Errorf("never listed: %v", err)
	}

	out.Reset()
	refused := &account{refuse: http.StatusForbidden}
	s, tun = confirmSession(t, refused.serve(t), "a1", &out)
	if err := confirmWithin(s, tun, 5*time.Second); err != nil || !strings.Contains(out.String(), "403 Forbidden (a service account's key") || tun.SauceID != "" {
		t.Errorf("refused: %v\n%s", err, out.String())
	}
	out.Reset()
	s, tun = confirmSession(t, "http://127.0.0.1:9", "a1", &out)
	if err := confirmWithin(s, tun, 5*time.Second); err != nil || strings.Count(out.String(), "cannot be confirmed at Sauce Labs") != 1 {
		t.Errorf("unreachable: %v\n%s", err, out.String())
	}
	out.Reset()
	s.Cfg.RESTConfirm = false
	if err := confirmWithin(s, tun, 5*time.Second); err != nil || out.Len() != 0 {
		t.Errorf("rest_confirm false: %v\n%s", err, out.String())
	}
}

// TestConfirmPollsOnOneConnection: the polls of one confirmation share a
// connection to the REST API instead of opening one each (a TLS handshake
// each, against Sauce).
func TestConfirmPollsOnOneConnection(t *testing.T) {
	a := &account{tunnels: []restTunnel{{ID: "a1", Name: "ci-7", Status: "running"}}, listedAt: time.Now().Add(1200 * time.Millisecond)}
	var out bytes.Buffer
	s, tun := confirmSession(t, a.serve(t), "a1", &out)
	if err := confirmWithin(s, tun, 5*time.Second); err != nil || tun.SauceID != "a1" {
		t.Fatalf("confirm: %v\n%s", err, out.String())
	}
	a.mu.Lock()
	lists := a.lists
	a.mu.Unlock()
	if n := a.conns.Load(); lists < 3 || n != 1 {
		t.Errorf("%d lists over %d connections; want several lists over one", lists, n)
	}
}

// TestExplainTunnelLimit: SC refused for the account's limit gets the
// account's running tunnels listed, with how to end one.
func TestExplainTunnelLimit(t *testing.T) {
	created := time.Now().Add(-2 * time.Hour).Unix()
	a := &account{tunnels: []restTunnel{{ID: "a1", Name: "web-41", Owner: "alice", Status: "running", CreationTime: created, Metadata: map[string]any{"runner": "drone"}}}}
	var out bytes.Buffer
	s, _ := confirmSession(t, a.serve(t), "", &out)
	err := s.ExplainExit(context.Background(), &ExitedError{ExitCode: 1}, "2026/12/07 [control] [ERROR] fatal error exiting: create tunnel: Too many active tunnels: 10; allowed: 10")
	for _, want := range []string{"limit of active tunnels is reached", "the account's running tunnels (1):", "web-41 (id a1, owner alice, up 2h0m", "runner=drone)", "-X DELETE " + s.Cfg.RESTURL + "/rest/v1/alice/tunnels/<id>"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("no %q in: %v", want, err)
		}
	}
	if ExitCode(err) != ExitFailure || canRetry(err) {
		t.Errorf("exit %d, retryable %v", ExitCode(err), canRetry(err))
	}
}

// confirmWithin confirms within d, as a start's ready_timeout bounds it.
func confirmWithin(s *Session, t *Tunnel, d time.Duration) error {
	ctx, cancel := context.WithTimeoutCause(context.Background(), d, ErrReadyTimeout)
	defer cancel()
	return s.Confirm(ctx, t)
}
