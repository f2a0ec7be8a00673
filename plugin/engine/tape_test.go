package engine_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/drone-sauce-connect/drone-sauce-connect/internal/testenv"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

// recordTape makes TestEveryVerbAgainstRecordedAnswers talk to the real
// engine (DOCKER_HOST's unix socket) and record its answers:
// go test ./plugin/engine -run TestEveryVerbAgainstRecordedAnswers -record
var recordTape = flag.Bool("record", false, "record the engine's answers into testdata/engine/tape.json")

// exchange is one request to the engine and its recorded answer.
type exchange struct {
	Method string            `json:"method"`
	Path   string            `json:"path"` // without the API version
	Status int               `json:"status"`
	Header map[string]string `json:"header,omitempty"`
	Body   string            `json:"body,omitempty"`
	// Binary is a body that is no text (a tar archive), in base64.
	Binary []byte `json:"binary,omitempty"`
}

// seal moves a body that is no UTF-8 text to Binary, which JSON keeps.
func (x *exchange) seal() {
	if !utf8.ValidString(x.Body) {
		x.Binary, x.Body = []byte(x.Body), ""
	}
}

func (x *exchange) body() string { return x.Body + string(x.Binary) }

// tape is the recorded exchanges, in order.
type tape struct {
	mu        sync.Mutex
	Exchanges []*exchange `json:"exchanges"`
	used      map[*exchange]bool
}

func unversioned(p string) string {
	if rest, ok := strings.CutPrefix(p, "/v"); ok {
		if i := strings.Index(rest, "/"); i >= 0 {
			return rest[i:]
		}
	}
	return p
}

var keptHeaders = []string{"Api-Version", "Content-Type", "Content-Encoding", "X-Docker-Container-Path-Stat"}

// recorder proxies to the engine's socket and records every exchange,
// the event stream included (as far as the client read it).
func (tp *tape) recorder(t *testing.T, socket string) http.Handler {
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) { r.Out.URL.Scheme, r.Out.URL.Host = "http", "docker" },
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		}},
		FlushInterval: -1,
		ModifyResponse: func(res *http.Response) error {
			x := &exchange{Method: res.Request.Method, Path: unversioned(res.Request.URL.Path), Status: res.StatusCode, Header: map[string]string{}}
			for _, h := range keptHeaders {
				if v := res.Header.Get(h); v != "" {
					x.Header[h] = v
				}
			}
			tp.mu.Lock()
			tp.Exchanges = append(tp.Exchanges, x)
			tp.mu.Unlock()
			if x.Path == "/events" {
				// A stream: recorded as far as the client read it.
				res.Body = &teeBody{ReadCloser: res.Body, x: x, tp: tp}
				return nil
			}
			// Whole, even where the client stops reading early (a tar).
			b, err := io.ReadAll(res.Body)
			res.Body.Close()
			x.Body, res.Body = string(b), io.NopCloser(bytes.NewReader(b))
			return err
		},
	}
	return rp
}

type teeBody struct {
	io.ReadCloser
	x  *exchange
	tp *tape
}

func (b *teeBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.tp.mu.Lock()
	b.x.Body += string(p[:n])
	b.tp.mu.Unlock()
	return n, err
}

// replayer answers each request with the first unused exchange recorded
// for its method and path.
func (tp *tape) replayer(t *testing.T) http.Handler {
	tp.used = map[*exchange]bool{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tp.mu.Lock()
		var x *exchange
		for _, e := range tp.Exchanges {
			if !tp.used[e] && e.Method == r.Method && e.Path == unversioned(r.URL.Path) {
				x, tp.used[e] = e, true
				break
			}
		}
		tp.mu.Unlock()
		if x == nil {
			t.Errorf("no recorded answer left for %s %s", r.Method, r.URL.Path)
			http.Error(w, `{"message":"not recorded"}`, http.StatusNotImplemented)
			return
		}
		for k, v := range x.Header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(x.Status)
		_, _ = io.WriteString(w, x.body())
	})
}

// TestEveryVerbAgainstRecordedAnswers runs each verb of the package, in the
// order a start and a stop use them, against the engine's recorded answers
// (testdata/engine/tape.json, recorded with -record from Docker 20.10):
// the request each verb makes and how it reads the answer, errors
// included, without an engine. The integration tests run the same verbs
// live.
func TestEveryVerbAgainstRecordedAnswers(t *testing.T) {
	path := filepath.Join(testenv.Root(), "testdata", "engine", "tape.json")
	tp := &tape{}
	var handler http.Handler
	if *recordTape {
		handler = tp.recorder(t, strings.TrimPrefix(cmp.Or(os.Getenv("DOCKER_HOST"), engine.DefaultHost), "unix://"))
		prepareRecording(t)
	} else {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, tp); err != nil {
			t.Fatal(err)
		}
		handler = tp.replayer(t)
	}
	srv := httptest.NewServer(handler)
	defer srv.Close()
	e, err := engine.Connect(context.Background(), engine.Access{Host: "tcp://" + srv.Listener.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	everyVerb(t, e)
	if *recordTape {
		for _, x := range tp.Exchanges {
			x.seal()
		}
		raw, _ := json.MarshalIndent(tp, "", "  ")
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(raw, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

const (
	tapeImage   = "dsc-engine-tape:busybox"
	tapeName    = "dsc-engine-tape"
	tapeNetwork = "dsc-engine-tape-net"
)

// prepareRecording makes the image and the network the recording uses,
// outside the recorded exchanges, and removes them afterwards.
func prepareRecording(t *testing.T) {
	cleanup, err := testenv.BusyboxImage(tapeImage)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	if out, err := exec.Command("docker", "network", "create", "--label", testenv.LabelTest+"=tape", tapeNetwork).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Cleanup(func() {
		_ = exec.Command("docker", "rm", "-f", tapeName).Run()
		_ = exec.Command("docker", "network", "rm", tapeNetwork).Run()
	})
}

func everyVerb(t *testing.T, e *engine.Engine) {
	ctx := context.Background()
	if _, err := e.InspectImage(ctx, tapeImage); err != nil {
		t.Fatalf("inspect image: %v", err)
	}
	if _, err := e.InspectImage(ctx, "dsc-engine-tape:missing"); !engine.IsNotFound(err) {
		t.Errorf("inspect of a missing image: %v, want not found", err)
	}
	var pullLog bytes.Buffer
	if err := e.PullImage(ctx, "127.0.0.1:1/dsc/missing:1", "u", "p", &pullLog); err == nil {
		t.Error("pull from a registry that is not there: no error")
	}
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	events, _ := e.WatchContainer(wctx, tapeName)
	spec := engine.ContainerSpec{Name: tapeName, Image: tapeImage, Cmd: []string{"sh", "-c", "echo hello from the tape; exec sleep 30"},
		Env: []engine.EnvVar{{Name: "TAPE", Value: "1"}}, Labels: map[string]string{testenv.LabelTest: "tape"},
		Port: 8032, Publish: &engine.HostPort{IP: "127.0.0.1"}, StopTimeout: 1,
		Files: []engine.File{{Path: "/run/tape/note", Mode: 0o400, Content: []byte("recorded")}}}
	id, err := e.CreateContainer(ctx, spec)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if _, err := e.CreateContainer(ctx, spec); !engine.IsConflict(err) {
		t.Errorf("a second create of the name: %v, want a conflict", err)
	}
	if err := e.StartContainer(ctx, id); err != nil {
		t.Fatalf("start: %v", err)
	}
	c, err := e.InspectContainer(ctx, id)
	if err != nil || !c.State.Running || c.Name != tapeName || len(c.HostPorts[8032]) == 0 {
		t.Fatalf("inspect: %+v, %v", c, err)
	}
	found, err := e.ListContainers(ctx, map[string]string{testenv.LabelTest: "tape"})
	if err != nil || len(found) != 1 || found[0].ID != id || len(found[0].Ports) == 0 {
		t.Errorf("list: %+v, %v", found, err)
	}
	if ok, err := e.PathExists(ctx, id, "/run/tape/note"); !ok || err != nil {
		t.Errorf("path exists: %v, %v", ok, err)
	}
	if ok, err := e.PathExists(ctx, id, "/run/tape/none"); ok || err != nil {
		t.Errorf("missing path exists: %v, %v", ok, err)
	}
	if b, err := e.ReadFile(ctx, id, "/run/tape/note"); string(b) != "recorded" || err != nil {
		t.Errorf("read file: %q, %v", b, err)
	}
	if err := e.PutFiles(ctx, id, []engine.File{{Path: "/run/tape/later", Mode: 0o444, Content: []byte("x")}}); err != nil {
		t.Errorf("put files: %v", err)
	}
	if err := e.Connect(ctx, tapeNetwork, id, []string{"tape"}); err != nil {
		t.Errorf("connect: %v", err)
	}
	n, err := e.InspectNetwork(ctx, tapeNetwork)
	if err != nil || len(n.Containers) != 1 {
		t.Errorf("inspect network: %+v, %v", n, err)
	}
	if err := e.Disconnect(ctx, tapeNetwork, id); err != nil {
		t.Errorf("disconnect: %v", err)
	}
	waitLogged(t, e, id)
	if _, err := e.StopContainer(ctx, id, time.Second); err != nil {
		t.Errorf("stop: %v", err)
	}
	if c, err := e.InspectContainer(ctx, id); err != nil || c.State.Running || c.State.ExitCode != 137 {
		t.Errorf("after stop: %+v, %v (sleep as PID 1 ignores SIGTERM: killed, 137)", c.State, err)
	}
	var seen []string
	for ev := range events {
		seen = append(seen, ev.Action)
		if ev.Action == "die" {
			break
		}
	}
	stopWatch()
	if strings.Join(seen, " ") != "start die" {
		t.Errorf("events %v, want start die", seen)
	}
	if err := e.RemoveContainer(ctx, id); err != nil {
		t.Errorf("remove: %v", err)
	}
	if err := e.RemoveContainer(ctx, id); err != nil {
		t.Errorf("a second remove: %v, want none (gone counts as removed)", err)
	}
	if _, err := e.InspectContainer(ctx, id); !engine.IsNotFound(err) {
		t.Errorf("inspect after remove: %v, want not found", err)
	}
	if err := e.RemoveNetwork(ctx, tapeNetwork); err != nil {
		t.Errorf("remove network: %v", err)
	}
	if _, err := e.InspectNetwork(ctx, tapeNetwork); !engine.IsNotFound(err) {
		t.Errorf("inspect of a removed network: %v, want not found", err)
	}
}

// waitLogged reads the log until the echo shows (at once in a replay).
func waitLogged(t *testing.T, e *engine.Engine, id string) {
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		var out bytes.Buffer
		if err := e.ContainerLogs(context.Background(), id, engine.LogsOptions{Tail: "all"}, &out, io.Discard); err != nil {
			t.Fatalf("logs: %v", err)
		}
		if strings.Contains(out.String(), "hello from the tape") {
			return
		}
	}
	t.Fatal("the log never showed the echo")
}
