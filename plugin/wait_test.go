package plugin

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// waitSession is a session for action wait on url, its outputs in a file.
func waitSession(t *testing.T, url string, timeout time.Duration) (*Session, *bytes.Buffer, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "outputs")
	c := Config{Action: ActionWait, APIURL: url, ReadyTimeout: timeout, TunnelName: "from-settings", Pipeline: Pipeline{DroneOutput: out}}
	var buf bytes.Buffer
	log := logrus.New()
	log.SetOutput(&buf)
	return NewSession(c, Options{Out: &buf, Log: log, HTTP: http.DefaultClient, Masker: NewMasker()}), &buf, out
}

func TestAwaitSidecar(t *testing.T) {
	var readyAt atomic.Int64
	readyAt.Store(time.Now().Add(300 * time.Millisecond).UnixNano())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case time.Now().UnixNano() < readyAt.Load():
			http.Error(w, "not ready", http.StatusServiceUnavailable)
		case r.URL.Path == "/info":
			_, _ = w.Write([]byte(`{"tunnel_id": "t1", "tunnel_name": "from-sc"}`))
		}
	}))
	defer srv.Close()

	s, buf, out := waitSession(t, srv.URL, 5*time.Second)
	tun, err := awaitWithin(s, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, buf)
	}
	if tun.Name != "from-sc" || tun.ReadyIn < 250*time.Millisecond {
		t.Errorf("tunnel %+v: want SC's own name, ready after SC's 300 ms", tun)
	}
	b, _ := os.ReadFile(out)
	if !strings.Contains(string(b), "SAUCE_CONNECT_API="+srv.URL+"\n") || !strings.Contains(string(b), "SAUCE_TUNNEL_NAME=from-sc\n") {
		t.Errorf("outputs:\n%s", b)
	}

	// Never ready: ready_timeout, with what SC last said.
	readyAt.Store(time.Now().Add(time.Hour).UnixNano())
	s, buf, _ = waitSession(t, srv.URL, 300*time.Millisecond)
	var to *TimeoutError
	if _, err := awaitWithin(s, nil); !errors.As(err, &to) || !strings.Contains(err.Error(), "503") {
		t.Errorf("want a timeout naming the 503, got %v\n%s", err, buf)
	}

	// SC's container is gone: the watcher's reason, at once.
	gone := errors.New("sauce connect exited with code 1")
	s, _, _ = waitSession(t, srv.URL, time.Minute)
	began := time.Now()
	_, err = awaitWithin(s, func(context.Context) error { time.Sleep(100 * time.Millisecond); return gone })
	if !errors.Is(err, gone) || time.Since(began) > 5*time.Second {
		t.Errorf("got %v after %s; want the watcher's error at once", err, time.Since(began))
	}
}

// awaitWithin is action wait, bounded by ready_timeout from the top as
// backend.Act bounds it.
func awaitWithin(s *Session, watch func(context.Context) error) (*Tunnel, error) {
	ctx, cancel := ReadyBy(context.Background(), s.Cfg)
	defer cancel()
	return s.AwaitSidecar(ctx, watch)
}

// TestAwaitSidecarConfirmsWithOneLookAtInfo: with credentials, action wait
// has Sauce confirm the pipeline's own SC by the name and the ID SC's /info
// gives, and reads /info once for both.
func TestAwaitSidecarConfirmsWithOneLookAtInfo(t *testing.T) {
	a := &account{tunnels: []restTunnel{{ID: "t0", Name: "from-sc", Status: "running"}, {ID: "t1", Name: "from-sc", Status: "running"}}}
	var infos atomic.Int32
	sc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/info" {
			infos.Add(1)
			_, _ = w.Write([]byte(`{"tunnel_id": "t1", "tunnel_name": "from-sc"}`))
		}
	}))
	defer sc.Close()
	s, buf, _ := waitSession(t, sc.URL, 5*time.Second)
	s.Cfg.Username, s.Cfg.AccessKey, s.Cfg.Region, s.Cfg.RESTURL, s.Cfg.RESTConfirm = "alice", "SECRET-KEY-1", "us-west", a.serve(t), true
	tun, err := awaitWithin(s, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, buf)
	}
	if tun.Name != "from-sc" || tun.SauceID != "t1" || !strings.Contains(buf.String(), "confirmed by Sauce Labs") {
		t.Errorf("tunnel %+v: want SC's name, confirmed with SC's ID t1\n%s", tun, buf)
	}
	if n := infos.Load(); n != 1 {
		t.Errorf("SC's /info was read %d times, want once", n)
	}
}
