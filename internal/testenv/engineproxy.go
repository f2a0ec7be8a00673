package testenv

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// Fault is what an EngineProxy does, instead of forwarding, to the first
// Times requests that match Method and Path (a regular expression on the
// path without its API version prefix, e.g. `^/containers/create$`).
type Fault struct {
	Method, Path string
	// Query, when set, must match the raw query too (e.g. `name=.*-watchdog`).
	Query       string
	Times       int
	Status      int           // answer with this status (500, 503, …)
	Drop        bool          // close the connection without an answer
	Lose        bool          // forward, then close the connection instead of answering
	Delay       time.Duration // forward, but only after this pause
	path, query *regexp.Regexp
	hits        int
}

// EngineProxy stands in front of the real engine's socket, as a busy engine
// or a socket proxy would: it forwards every request, streams included, and
// fails or delays chosen ones.
type EngineProxy struct {
	Socket string // unix socket path to point DOCKER_HOST at
	mu     sync.Mutex
	faults []*Fault
}

var apiVersion = regexp.MustCompile(`^/v[0-9.]+`)

// NewEngineProxy serves a proxy to the engine at DOCKER_HOST (or the default
// socket) until the test ends.
func NewEngineProxy(t *testing.T, faults ...*Fault) *EngineProxy {
	t.Helper()
	target := "/var/run/docker.sock"
	if p, ok := strings.CutPrefix(os.Getenv("DOCKER_HOST"), "unix://"); ok {
		target = p
	}
	dir, err := os.MkdirTemp("", "dsc-proxy-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	for _, f := range faults {
		f.path, f.query = regexp.MustCompile(f.Path), regexp.MustCompile(f.Query)
	}
	p := &EngineProxy{Socket: filepath.Join(dir, "engine.sock"), faults: faults}
	l, err := net.Listen("unix", p.Socket)
	if err != nil {
		t.Fatal(err)
	}
	rp := &httputil.ReverseProxy{
		Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(&url.URL{Scheme: "http", Host: "docker"}) },
		FlushInterval: -1,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", target)
		}},
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f := p.match(r)
		switch {
		case f == nil:
		case f.Drop, f.Lose:
			if f.Lose {
				rp.ServeHTTP(httptest.NewRecorder(), r)
			}
			if c, _, err := w.(http.Hijacker).Hijack(); err == nil {
				c.Close()
			}
			return
		case f.Status != 0:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(f.Status)
			fmt.Fprintf(w, `{"message":"injected by the test's engine proxy: %d"}`, f.Status)
			return
		case f.Delay > 0:
			time.Sleep(f.Delay)
		}
		rp.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return p
}

func (p *EngineProxy) match(r *http.Request) *Fault {
	path := apiVersion.ReplaceAllString(r.URL.Path, "")
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.faults {
		if f.hits < f.Times && f.Method == r.Method && f.path.MatchString(path) && f.query.MatchString(r.URL.RawQuery) {
			f.hits++
			return f
		}
	}
	return nil
}

// Unused lists the faults that did not happen as many times as asked: a
// test whose faults were never injected proves nothing.
func (p *EngineProxy) Unused() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, f := range p.faults {
		if f.hits < f.Times {
			out = append(out, fmt.Sprintf("%s %s: %d of %d", f.Method, f.Path, f.hits, f.Times))
		}
	}
	return out
}
