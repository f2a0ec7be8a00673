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
// or a socket proxy would: it forwards every request, streams included,
// fails or delays chosen ones, and counts them.
type EngineProxy struct {
	Socket string // unix socket path to point DOCKER_HOST at
	mu     sync.Mutex
	faults []*Fault
	calls  map[string]int
	close  func()
}

var apiVersion = regexp.MustCompile(`^/v[0-9.]+`)

// NewEngineProxy serves a proxy to the engine at DOCKER_HOST (or the default
// socket) until the test ends.
func NewEngineProxy(t *testing.T, faults ...*Fault) *EngineProxy {
	t.Helper()
	p, err := StartEngineProxy(faults...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// StartEngineProxy serves a proxy to the engine at DOCKER_HOST (or the
// default socket) until Close.
func StartEngineProxy(faults ...*Fault) (*EngineProxy, error) {
	target := "/var/run/docker.sock"
	if p, ok := strings.CutPrefix(os.Getenv("DOCKER_HOST"), "unix://"); ok {
		target = p
	}
	dir, err := os.MkdirTemp("", "dsc-proxy-")
	if err != nil {
		return nil, err
	}
	for _, f := range faults {
		f.path, f.query = regexp.MustCompile(f.Path), regexp.MustCompile(f.Query)
	}
	p := &EngineProxy{Socket: filepath.Join(dir, "engine.sock"), faults: faults, calls: map[string]int{}}
	l, err := net.Listen("unix", p.Socket)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
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
		p.count(r)
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
	p.close = func() { _ = srv.Close(); _ = os.RemoveAll(dir) }
	return p, nil
}

// Close stops the proxy.
func (p *EngineProxy) Close() { p.close() }

// objectRef is an object's ID or name in an API path.
var objectRef = regexp.MustCompile(`^/(containers|networks|images)/([^/]+)`)

// count tallies r by its verb: method and path, the object's ID or name as
// {ref} ("GET /containers/{ref}/json").
func (p *EngineProxy) count(r *http.Request) {
	path := apiVersion.ReplaceAllString(r.URL.Path, "")
	if m := objectRef.FindStringSubmatch(path); m != nil && m[2] != "json" && m[2] != "create" {
		path = "/" + m[1] + "/{ref}" + strings.TrimPrefix(path, m[0])
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls[r.Method+" "+path]++
}

// Calls returns the requests made since the last call, by verb, and starts
// counting afresh.
func (p *EngineProxy) Calls() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.calls
	p.calls = map[string]int{}
	return out
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
