package docker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/drone-sauce-connect/drone-sauce-connect/internal/testenv"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

// simEngine is an engine in memory for unit tests: containers are created,
// started, inspected, listed, stopped and removed as the Docker API does it
// (names unique, a conflict on a taken name, events for start, die and
// destroy, a log that follows), and a started SC container answers its API
// on a host port of this machine, where the simulated SC's behaviour (sc)
// makes it ready or not. The integration tests run the same starts on a
// real engine; this one makes them quick, exact and countable.
type simEngine struct {
	t  *testing.T
	mu sync.Mutex
	// sc plays SC in a started SC container; nil: ready at once.
	sc func(c *simContainer)
	// beforeCreate, when set, runs before each create: a test holds
	// creates back with it to make two starts race.
	beforeCreate func(name string)
	noImage      bool
	seq          int
	containers   map[string]*simContainer
	networks     map[string]*engine.Network
	subs         []*simSub
	calls        map[string]int
}

type simContainer struct {
	e       *simEngine
	spec    engine.ContainerSpec
	id      string
	state   engine.State
	created time.Time
	ip      string
	files   map[string][]byte
	logs    bytes.Buffer
	ready   bool
	api     *httptest.Server
	// stopCode is SC's exit code on SIGTERM.
	stopCode int
}

type simSub struct {
	ref string
	ch  chan engine.Event
	ctx context.Context
}

func newSim(t *testing.T) *simEngine {
	e := &simEngine{t: t, containers: map[string]*simContainer{}, networks: map[string]*engine.Network{}, calls: map[string]int{}}
	t.Cleanup(func() {
		for _, c := range e.all() {
			if c.api != nil {
				c.api.Close()
			}
		}
	})
	return e
}

func (e *simEngine) count(verb string) {
	e.mu.Lock()
	e.calls[verb]++
	e.mu.Unlock()
}

// Calls returns the engine calls made so far, by verb.
func (e *simEngine) Calls() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string]int{}
	for k, v := range e.calls {
		out[k] = v
	}
	return out
}

// find resolves an ID, an ID prefix or a name; the caller holds mu.
func (e *simEngine) find(ref string) *simContainer {
	ref = strings.TrimPrefix(ref, "/")
	if c, ok := e.containers[ref]; ok {
		return c
	}
	for _, c := range e.containers {
		if c.spec.Name == ref || len(ref) >= 12 && strings.HasPrefix(c.id, ref) {
			return c
		}
	}
	return nil
}

// emit sends ev to the subscribers of c; the caller holds mu.
func (e *simEngine) emit(c *simContainer, action string) {
	ev := engine.Event{Action: action, ID: c.id, ExitCode: c.state.ExitCode, TimeNano: time.Now().UnixNano()}
	for _, s := range e.subs {
		if s.ref != c.id && s.ref != c.spec.Name {
			continue
		}
		select {
		case s.ch <- ev:
		case <-s.ctx.Done():
		}
	}
}

type simConflict struct{ error }

func (simConflict) Conflict() {}

func (e *simEngine) InspectImage(context.Context, string) (engine.Image, error) {
	e.count("inspect image")
	if e.noImage {
		return engine.Image{}, notFound{}
	}
	return engine.Image{}, nil
}

func (e *simEngine) PullImage(context.Context, string, string, string, io.Writer) error {
	e.count("pull")
	e.noImage = false
	return nil
}

func (e *simEngine) CreateContainer(_ context.Context, s engine.ContainerSpec) (string, error) {
	e.count("create")
	if e.beforeCreate != nil {
		e.beforeCreate(s.Name)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.find(s.Name) != nil {
		return "", simConflict{fmt.Errorf("Conflict. The container name %q is already in use", "/"+s.Name)}
	}
	e.seq++
	id := fmt.Sprintf("%x", sha256.Sum256([]byte(fmt.Sprint(e.seq, s.Name))))
	c := &simContainer{e: e, spec: s, id: id, created: time.Now(), files: map[string][]byte{}, state: engine.State{Status: "created"}}
	for _, f := range s.Files {
		c.files[f.Path] = f.Content
	}
	e.containers[id] = c
	e.emit(c, "create")
	return id, nil
}

func (e *simEngine) StartContainer(_ context.Context, id string) error {
	e.count("start")
	e.mu.Lock()
	c := e.find(id)
	if c == nil {
		e.mu.Unlock()
		return notFound{}
	}
	c.state = engine.State{Status: "running", Running: true, StartedAt: time.Now()}
	c.ip = fmt.Sprintf("172.17.0.%d", 1+e.seq)
	isSC := c.spec.Labels[plugin.LabelRole] == plugin.RoleTunnel
	if isSC {
		c.api = httptest.NewServer(http.HandlerFunc(c.serveAPI))
	}
	e.emit(c, "start")
	e.mu.Unlock()
	if isSC {
		if e.sc != nil {
			go e.sc(c)
		} else {
			c.becomeReady()
		}
	}
	return nil
}

// serveAPI is SC's API server: /readyz and /info.
func (c *simContainer) serveAPI(w http.ResponseWriter, r *http.Request) {
	c.e.mu.Lock()
	ready := c.ready
	c.e.mu.Unlock()
	switch {
	case r.URL.Path == "/info":
		fmt.Fprintf(w, `{"tunnel_id":"sauce-%s","tunnel_name":%q}`, c.id[:8], c.spec.Name)
	case r.URL.Path == "/readyz" && ready:
		w.WriteHeader(http.StatusOK)
	default:
		w.WriteHeader(http.StatusServiceUnavailable)
	}
}

// log appends a line to SC's log.
func (c *simContainer) log(line string) {
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	c.logs.WriteString(line + "\n")
}

// becomeReady logs SC's ready line and answers /readyz 200.
func (c *simContainer) becomeReady() {
	c.log("Sauce Connect is up, you may start your tests")
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	c.ready = true
}

// exit ends SC by itself with code.
func (c *simContainer) exit(code int) {
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	c.end(code)
}

// end stops c; the caller holds mu.
func (c *simContainer) end(code int) {
	if !c.state.Running {
		return
	}
	c.state.Running, c.state.Status, c.state.ExitCode = false, "exited", code
	c.ready = false
	c.e.emit(c, "die")
}

func (c *simContainer) view() engine.Container {
	env := make([]string, 0, len(c.spec.Env))
	for _, v := range c.spec.Env {
		env = append(env, v.Name+"="+v.Value)
	}
	out := engine.Container{ID: c.id, Name: c.spec.Name, Image: c.spec.Image, Labels: c.spec.Labels, Env: env, Cmd: c.spec.Cmd,
		State: c.state, NetworkMode: c.spec.NetworkMode, Networks: map[string]engine.Endpoint{}}
	if len(c.spec.Mounts) > 0 {
		out.Mounts = map[string]string{}
		for _, m := range c.spec.Mounts {
			out.Mounts[m.Target] = m.Source
		}
	}
	if c.state.Running && c.spec.NetworkMode != "host" {
		out.Networks["bridge"] = engine.Endpoint{IP: c.ip, Gateway: "172.17.0.1"}
	}
	if c.api != nil && c.state.Running && c.spec.Publish != nil {
		_, port, _ := net.SplitHostPort(c.api.Listener.Addr().String())
		p, _ := strconv.Atoi(port)
		out.HostPorts = map[int][]engine.HostPort{c.spec.Port: {{IP: "127.0.0.1", Port: p}}}
	}
	return out
}

func (e *simEngine) InspectContainer(_ context.Context, id string) (engine.Container, error) {
	e.count("inspect")
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.find(id)
	if c == nil {
		return engine.Container{}, notFound{}
	}
	return c.view(), nil
}

func (e *simEngine) ListContainers(_ context.Context, labels map[string]string) ([]engine.Summary, error) {
	e.count("list")
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []engine.Summary
	for _, c := range e.containers {
		if !engine.HasLabels(c.spec.Labels, labels) {
			continue
		}
		s := engine.Summary{ID: c.id, Names: []string{"/" + c.spec.Name}, Labels: c.spec.Labels, State: c.state.Status}
		for _, hps := range c.view().HostPorts {
			s.Ports = append(s.Ports, hps...)
		}
		out = append(out, s)
	}
	return out, nil
}

func (e *simEngine) StopContainer(_ context.Context, id string, _ time.Duration) (bool, error) {
	e.count("stop")
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.find(id)
	if c == nil {
		return false, notFound{}
	}
	c.end(c.stopCode)
	return false, nil
}

func (e *simEngine) RemoveContainer(_ context.Context, id string) error {
	e.count("remove")
	e.mu.Lock()
	c := e.find(id)
	if c == nil {
		e.mu.Unlock()
		return notFound{}
	}
	c.end(137)
	delete(e.containers, c.id)
	e.emit(c, "destroy")
	e.mu.Unlock()
	// Closed unlocked: Close waits for requests in flight, which lock.
	if c.api != nil {
		c.api.Close()
	}
	return nil
}

func (e *simEngine) ContainerLogs(ctx context.Context, id string, o engine.LogsOptions, stdout, _ io.Writer) error {
	e.count("logs")
	sent := 0
	for {
		e.mu.Lock()
		c := e.find(id)
		if c == nil {
			e.mu.Unlock()
			return notFound{}
		}
		b := c.logs.Bytes()[sent:]
		sent += len(b)
		running := c.state.Running
		e.mu.Unlock()
		if _, err := stdout.Write(b); err != nil {
			return err
		}
		if !o.Follow || !running {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (e *simEngine) WatchContainer(ctx context.Context, id string) (<-chan engine.Event, <-chan error) {
	e.count("events")
	s := &simSub{ref: id, ch: make(chan engine.Event, 64), ctx: ctx}
	e.mu.Lock()
	e.subs = append(e.subs, s)
	e.mu.Unlock()
	go func() {
		<-ctx.Done()
		e.mu.Lock()
		defer e.mu.Unlock()
		for i, x := range e.subs {
			if x == s {
				e.subs = append(e.subs[:i], e.subs[i+1:]...)
				break
			}
		}
		close(s.ch)
	}()
	return s.ch, make(chan error)
}

func (e *simEngine) PathExists(_ context.Context, id, path string) (bool, error) {
	e.count("stat")
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.find(id)
	if c == nil {
		return false, notFound{}
	}
	_, ok := c.files[path]
	return ok, nil
}

func (e *simEngine) PutFiles(_ context.Context, id string, files []engine.File) error {
	e.count("put files")
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.find(id)
	if c == nil {
		return notFound{}
	}
	for _, f := range files {
		c.files[f.Path] = f.Content
	}
	return nil
}

func (e *simEngine) ReadFile(_ context.Context, id, path string) ([]byte, error) {
	e.count("read file")
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.find(id)
	if c == nil {
		return nil, notFound{}
	}
	b, ok := c.files[path]
	if !ok {
		return nil, notFound{}
	}
	return b, nil
}

func (e *simEngine) Connect(_ context.Context, network, id string, _ []string) error {
	e.count("connect")
	return nil
}

func (e *simEngine) Disconnect(_ context.Context, network, id string) error {
	e.count("disconnect")
	return nil
}

func (e *simEngine) InspectNetwork(_ context.Context, name string) (engine.Network, error) {
	e.count("inspect network")
	e.mu.Lock()
	defer e.mu.Unlock()
	if n, ok := e.networks[name]; ok {
		return *n, nil
	}
	return engine.Network{}, notFound{}
}

func (e *simEngine) RemoveNetwork(_ context.Context, name string) error {
	e.count("remove network")
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.networks, name)
	return nil
}

// add puts a running container that the plugin did not make (a pipeline
// step) on the engine.
func (e *simEngine) add(s engine.ContainerSpec) *simContainer {
	id, err := e.CreateContainer(context.Background(), s)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.StartContainer(context.Background(), id); err != nil {
		e.t.Fatal(err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.containers[id]
}

// running are the engine's running containers of role ("" any).
func (e *simEngine) running(role string) []*simContainer {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []*simContainer
	for _, c := range e.containers {
		if c.state.Running && (role == "" || c.spec.Labels[plugin.LabelRole] == role) {
			out = append(out, c)
		}
	}
	return out
}

// all are every container the engine holds.
func (e *simEngine) all() []*simContainer {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []*simContainer
	for _, c := range e.containers {
		out = append(out, c)
	}
	return out
}

// simBackend is the Docker backend on e, on the host (no container of its
// own), for a tunnel named name; edit adjusts the settings.
func simBackend(t *testing.T, e *simEngine, name string, edit func(*plugin.Settings)) (*backend, *testenv.SafeBuffer) {
	t.Helper()
	set := plugin.DefaultSettings()
	set.Username, set.AccessKey, set.TunnelName, set.APIHostPort, set.Region = "u", "k", name, "0", "us-west"
	set.RESTConfirm, set.ReadyTimeout, set.StopTimeout = "false", "10s", "1s"
	if edit != nil {
		edit(&set)
	}
	c, err := set.Config(plugin.Pipeline{}, "h", "r")
	if err != nil {
		t.Fatal(err)
	}
	out := &testenv.SafeBuffer{}
	log := logrus.New()
	log.SetOutput(out)
	log.SetFormatter(plugin.LogFormatter("text"))
	s := plugin.NewSession(c, plugin.Options{Out: out, Log: log})
	b := New(s, e, engine.Access{Host: "unix:///var/run/docker.sock"}).(*backend)
	b.here = func() procSelf { return procSelf{marker: func() (string, func()) { return "", func() {} }} }
	return b, out
}

// start runs the start action as Perform does: within ready_timeout.
func start(b *backend) (*plugin.Tunnel, error) {
	ctx, cancel := plugin.ReadyBy(context.Background(), b.cfg)
	defer cancel()
	t, err := b.Start(ctx)
	return t, plugin.TimedOut(ctx, b.cfg, err)
}
