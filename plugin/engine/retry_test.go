package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
)

// flaky is an engine API that answers each request with the next reply
// queued for its route, then with ok. It is the engine of a unit test: the
// real engine behind a failing proxy is in cmd/drone-sauce-connect.
type flaky struct {
	mu      sync.Mutex
	replies map[string][]func(w http.ResponseWriter) // route ("POST create") → queued replies
	seen    map[string]int
	ok      func(route string, w http.ResponseWriter)
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Api-Version", "1.41")
	if strings.HasSuffix(r.URL.Path, "/_ping") {
		_, _ = io.WriteString(w, "OK")
		return
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	route := r.Method + " " + parts[len(parts)-1]
	f.mu.Lock()
	f.seen[route]++
	var reply func(http.ResponseWriter)
	if q := f.replies[route]; len(q) > 0 {
		reply, f.replies[route] = q[0], q[1:]
	}
	f.mu.Unlock()
	if reply != nil {
		reply(w)
		return
	}
	f.ok(route, w)
}

func (f *flaky) count(route string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seen[route]
}

func status(code int) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"message":"injected %d"}`, code)
	}
}

// dropped closes the connection without an answer.
func dropped(w http.ResponseWriter) {
	c, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		c.Close()
	}
}

func slow(d time.Duration) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		time.Sleep(d)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{}`)
	}
}

const inspected = `{"Id":"c0ffee","Name":"/sc-x","State":{"Status":"created"},"Config":{"Labels":{"a":"1","from-image":"x"}}}`

func newFlaky(t *testing.T, replies map[string][]func(http.ResponseWriter)) (*flaky, *Engine, *[]Retry) {
	f := &flaky{replies: replies, seen: map[string]int{}, ok: func(route string, w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		switch route {
		case "POST create":
			w.WriteHeader(http.StatusCreated)
			_, _ = io.WriteString(w, `{"Id":"c0ffee","Warnings":[]}`)
		case "GET json":
			_, _ = io.WriteString(w, inspected)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}}
	sock := filepath.Join(t.TempDir(), "engine.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: f}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	t.Setenv("DOCKER_HOST", "unix://"+sock)
	e, err := NewEnv(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	var retries []Retry
	e.OnRetry = func(r Retry) { retries = append(retries, r) }
	return f, e, &retries
}

func TestRetriesTransientFailures(t *testing.T) {
	spec := ContainerSpec{Name: "sc-x", Image: "x", Labels: map[string]string{"a": "1"}}
	t.Run("5xx then created", func(t *testing.T) {
		f, e, retries := newFlaky(t, map[string][]func(http.ResponseWriter){
			"POST create": {status(503), status(500), status(429)},
		})
		id, err := e.CreateContainer(context.Background(), spec)
		if err != nil || id != "c0ffee" {
			t.Fatalf("CreateContainer = %q, %v", id, err)
		}
		if n := f.count("POST create"); n != 4 {
			t.Errorf("%d create requests, want 4", n)
		}
		if len(*retries) != 3 || (*retries)[0].Op != "create container sc-x" || (*retries)[2].Wait != 4*firstBackoff {
			t.Errorf("retries = %+v", *retries)
		}
	})
	t.Run("created before the failure is adopted", func(t *testing.T) {
		f, e, _ := newFlaky(t, map[string][]func(http.ResponseWriter){
			"POST create": {dropped, status(409)},
		})
		id, err := e.CreateContainer(context.Background(), spec)
		if err != nil || id != "c0ffee" {
			t.Fatalf("CreateContainer = %q, %v", id, err)
		}
		if f.count("GET json") != 1 {
			t.Errorf("the conflict was not looked into")
		}
	})
	t.Run("a conflict without an earlier failure is the caller's", func(t *testing.T) {
		_, e, _ := newFlaky(t, map[string][]func(http.ResponseWriter){"POST create": {status(409)}})
		if _, err := e.CreateContainer(context.Background(), spec); !IsConflict(err) {
			t.Fatalf("err = %v, want a conflict", err)
		}
	})
	t.Run("dropped connection", func(t *testing.T) {
		f, e, _ := newFlaky(t, map[string][]func(http.ResponseWriter){"GET json": {dropped}})
		if _, err := e.InspectContainer(context.Background(), "c0ffee"); err != nil {
			t.Fatal(err)
		}
		if n := f.count("GET json"); n != 2 {
			t.Errorf("%d inspect requests, want 2", n)
		}
	})
	t.Run("slow answer", func(t *testing.T) {
		f, e, retries := newFlaky(t, map[string][]func(http.ResponseWriter){"POST start": {slow(time.Second)}})
		e.RequestTimeout = 100 * time.Millisecond
		if err := e.StartContainer(context.Background(), "c0ffee"); err != nil {
			t.Fatal(err)
		}
		if n := f.count("POST start"); n != 2 || len(*retries) != 1 || !errors.Is((*retries)[0].Err, errRequestTimeout) {
			t.Errorf("%d start requests, retries %+v", n, *retries)
		}
	})
	t.Run("not found is not retried", func(t *testing.T) {
		f, e, _ := newFlaky(t, map[string][]func(http.ResponseWriter){"GET json": {status(404)}})
		if _, err := e.InspectContainer(context.Background(), "c0ffee"); !IsNotFound(err) {
			t.Fatalf("err = %v", err)
		}
		if n := f.count("GET json"); n != 1 {
			t.Errorf("%d inspect requests, want 1", n)
		}
	})
	t.Run("retries end at the context's deadline", func(t *testing.T) {
		always := make([]func(http.ResponseWriter), 100)
		for i := range always {
			always[i] = status(500)
		}
		f, e, _ := newFlaky(t, map[string][]func(http.ResponseWriter){"POST start": always})
		began := time.Now()
		ctx, cancel := context.WithDeadline(context.Background(), began.Add(500*time.Millisecond))
		defer cancel()
		err := e.StartContainer(ctx, "c0ffee")
		if !cerrdefs.IsInternal(err) {
			t.Fatalf("err = %v, want the engine's 500", err)
		}
		// 100 + 200 ms of backoff fit before 500 ms; 400 more would not.
		if n, took := f.count("POST start"), time.Since(began); n != 3 || took > time.Second {
			t.Errorf("%d start requests in %s, want 3 within the deadline", n, took)
		}
	})
	t.Run("the caller's cancel is final", func(t *testing.T) {
		f, e, _ := newFlaky(t, map[string][]func(http.ResponseWriter){"POST start": {slow(time.Second)}})
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if err := e.StartContainer(ctx, "c0ffee"); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v", err)
		}
		if n := f.count("POST start"); n != 1 {
			t.Errorf("%d start requests, want 1", n)
		}
	})
}

func TestTransient(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{cerrdefs.ErrInternal, true},
		{cerrdefs.ErrUnavailable, true},
		{cerrdefs.ErrResourceExhausted, true},
		{fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{io.ErrUnexpectedEOF, true},
		{fmt.Errorf("%w within 1m0s: %w", errRequestTimeout, context.DeadlineExceeded), true},
		{context.DeadlineExceeded, false},
		{context.Canceled, false},
		{cerrdefs.ErrNotFound, false},
		{cerrdefs.ErrConflict, false},
		{cerrdefs.ErrInvalidArgument, false},
		{cerrdefs.ErrUnauthenticated, false},
		{errors.New("no such image"), false},
	} {
		if got := transient(c.err); got != c.want {
			t.Errorf("transient(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
