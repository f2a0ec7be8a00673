package kubeapi

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// refusing serves n refusals with code (and Retry-After when after is
// set), then 200; it counts the requests and keeps the last token seen.
func refusing(t *testing.T, n int32, code int, after string) (*Client, *atomic.Int32, *atomic.Value) {
	t.Helper()
	var calls atomic.Int32
	var token atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token.Store(r.Header.Get("Authorization"))
		if calls.Add(1) <= n {
			if after != "" {
				w.Header().Set("Retry-After", after)
			}
			http.Error(w, `{"reason":"TooManyRequests","message":"slow down"}`, code)
			return
		}
		_, _ = w.Write([]byte(`{"metadata":{"name":"p"}}`))
	}))
	t.Cleanup(srv.Close)
	c, err := New(Config{Host: srv.URL, Token: "t0"})
	if err != nil {
		t.Fatal(err)
	}
	return c, &calls, &token
}

func TestRetries(t *testing.T) {
	defer func(d time.Duration) { retryFirst = d }(retryFirst)
	retryFirst = time.Millisecond
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		code   int
		after  string
		create bool
		calls  int32
		ok     bool
	}{
		{"429 with Retry-After", http.StatusTooManyRequests, "0", false, 3, true},
		{"429 on a create", http.StatusTooManyRequests, "", true, 3, true},
		{"503 on a read", http.StatusServiceUnavailable, "", false, 3, true},
		{"503 on a create is not repeated", http.StatusServiceUnavailable, "", true, 1, false},
		{"500 with Retry-After", http.StatusInternalServerError, "0", true, 3, true},
		{"403 is final", http.StatusForbidden, "", false, 1, false},
	} {
		c, calls, _ := refusing(t, 2, tc.code, tc.after)
		var err error
		if tc.create {
			_, err = c.CreatePod(ctx, "ns", Pod{})
		} else {
			_, err = c.GetPod(ctx, "ns", "p")
		}
		if (err == nil) != tc.ok || calls.Load() != tc.calls {
			t.Errorf("%s: %d calls, %v; want %d calls, ok %t", tc.name, calls.Load(), err, tc.calls, tc.ok)
		}
	}
	c, calls, _ := refusing(t, 100, http.StatusTooManyRequests, "0")
	if _, err := c.GetPod(ctx, "ns", "p"); !IsTooMany(err) || calls.Load() != retries {
		t.Errorf("a server that never relents: %d calls, %v", calls.Load(), err)
	}
}

// IsTooMany is for the test: a 429 that outlasted the retries.
func IsTooMany(err error) bool { return code(err) == http.StatusTooManyRequests }

func TestTokenFileIsReadAgain(t *testing.T) {
	c, _, token := refusing(t, 0, 0, "")
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("t1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.tokenFile = file
	if _, err := c.GetPod(context.Background(), "ns", "p"); err != nil || token.Load() != "Bearer t0" {
		t.Fatalf("before the refresh is due: %v, %v", token.Load(), err)
	}
	c.tokenAge = time.Now().Add(-tokenRefresh) // the kubelet rotated it a while ago
	if _, err := c.GetPod(context.Background(), "ns", "p"); err != nil || token.Load() != "Bearer t1" {
		t.Errorf("the rotated token was not read: %v, %v", token.Load(), err)
	}
}

// TestSilentAPIServer: an API server that takes the connection and never
// answers ends the request at the answer's bound, with an error, instead
// of hanging the step.
func TestSilentAPIServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = conn.Close() }) // held open, never answered
		}
	}()
	c, err := New(Config{Host: "http://" + l.Addr().String(), Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	c.http.Transport = transport(nil, 300*time.Millisecond)
	began := time.Now()
	_, err = c.GetPod(context.Background(), "ns", "p")
	if err == nil || time.Since(began) > 5*time.Second {
		t.Fatalf("a silent API server: %v after %s", err, time.Since(began))
	}
	if c.http.Transport.(*http.Transport).ResponseHeaderTimeout != 300*time.Millisecond || transport(nil, answerTimeout).ResponseHeaderTimeout != answerTimeout {
		t.Error("the answer's bound is not the transport's")
	}
}
