package docker

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"

	"github.com/sirupsen/logrus"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

// fakeEngine implements Engine with optional function fields; an unset
// field answers with zero values. It records the calls made.
type fakeEngine struct {
	mu    sync.Mutex
	calls []string

	list       func(labels map[string]string) ([]engine.Summary, error)
	create     func(s engine.ContainerSpec) (string, error)
	start      func(id string) error
	inspect    func(id string) (engine.Container, error)
	pathExists func(id, path string) bool
	network    func(name string) (engine.Network, error)
	events     func(id string) <-chan engine.Event
	logs       func(id string) string
	files      map[string]string // "id:path" → content
}

func (f *fakeEngine) record(call string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
}

func (f *fakeEngine) InspectImage(context.Context, string) (engine.Image, error) {
	return engine.Image{}, nil
}
func (f *fakeEngine) PullImage(context.Context, string, string, string, io.Writer) error {
	return nil
}
func (f *fakeEngine) CreateContainer(_ context.Context, s engine.ContainerSpec) (string, error) {
	f.record("create " + s.Name)
	if f.create != nil {
		return f.create(s)
	}
	return "id-" + s.Name, nil
}
func (f *fakeEngine) StartContainer(_ context.Context, id string) error {
	f.record("start " + id)
	if f.start != nil {
		return f.start(id)
	}
	return nil
}
func (f *fakeEngine) InspectContainer(_ context.Context, id string) (engine.Container, error) {
	if f.inspect != nil {
		return f.inspect(id)
	}
	return engine.Container{}, notFound{}
}
func (f *fakeEngine) ListContainers(_ context.Context, labels map[string]string) ([]engine.Summary, error) {
	if f.list != nil {
		return f.list(labels)
	}
	return nil, nil
}
func (f *fakeEngine) StopContainer(_ context.Context, id string, _ time.Duration) (bool, error) {
	f.record("stop " + id)
	return false, nil
}
func (f *fakeEngine) RemoveContainer(_ context.Context, id string) error {
	f.record("remove " + id)
	return nil
}
func (f *fakeEngine) ContainerLogs(_ context.Context, id string, _ engine.LogsOptions, stdout, _ io.Writer) error {
	if f.logs != nil {
		_, _ = io.WriteString(stdout, f.logs(id))
	}
	return nil
}
func (f *fakeEngine) WatchContainer(ctx context.Context, id string) (<-chan engine.Event, <-chan error) {
	if f.events != nil {
		return f.events(id), make(chan error)
	}
	return make(chan engine.Event), make(chan error)
}
func (f *fakeEngine) PathExists(_ context.Context, id, path string) (bool, error) {
	f.record("stat " + id)
	return f.pathExists != nil && f.pathExists(id, path), nil
}
func (f *fakeEngine) PutFiles(_ context.Context, id string, files []engine.File) error {
	f.record("put files " + id)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.files == nil {
		f.files = map[string]string{}
	}
	for _, file := range files {
		f.files[id+":"+file.Path] = string(file.Content)
	}
	return nil
}
func (f *fakeEngine) ReadFile(_ context.Context, id, path string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if v, ok := f.files[id+":"+path]; ok {
		return []byte(v), nil
	}
	return nil, notFound{}
}
func (f *fakeEngine) Connect(_ context.Context, network, id string, _ []string) error {
	f.record("connect " + id + " " + network)
	return nil
}
func (f *fakeEngine) Disconnect(_ context.Context, network, id string) error {
	f.record("disconnect " + id + " " + network)
	return nil
}
func (f *fakeEngine) InspectNetwork(_ context.Context, name string) (engine.Network, error) {
	if f.network != nil {
		return f.network(name)
	}
	return engine.Network{}, notFound{}
}
func (f *fakeEngine) RemoveNetwork(_ context.Context, name string) error {
	f.record("remove network " + name)
	return nil
}

// notFound is an error the errdefs checks classify as not found.
type notFound struct{}

func (notFound) Error() string { return "no such container" }
func (notFound) NotFound()     {}

func fakeRun(t *testing.T, f *fakeEngine, now time.Time) (*backend, *bytes.Buffer) {
	t.Helper()
	set := plugin.DefaultSettings()
	set.Username, set.AccessKey, set.TunnelName, set.APIHostPort, set.Region = "u", "k", "fake", "0", "us-west"
	c, err := set.Config(plugin.Pipeline{}, "h", "r")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	log := logrus.New()
	log.SetOutput(&out)
	log.SetFormatter(plugin.LogFormatter("text"))
	s := plugin.NewSession(c, plugin.Options{Out: &out, Log: log, Now: func() time.Time { return now }})
	return New(s, f, engine.Access{}).(*backend), &out
}

func TestSweepRemovesOnlyExpired(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	all := []engine.Summary{
		{ID: "expired0000001", Labels: map[string]string{plugin.LabelManaged: "true", plugin.LabelExpires: "1799999999", plugin.LabelTunnel: "old", plugin.LabelRole: plugin.RoleTunnel}},
		{ID: "live000000001", Labels: map[string]string{plugin.LabelManaged: "true", plugin.LabelExpires: "1800000001", plugin.LabelTunnel: "other"}},
		{ID: "nolabel000001", Labels: map[string]string{plugin.LabelManaged: "true", plugin.LabelTunnel: "odd"}},
		{ID: "notours000001", Labels: map[string]string{plugin.LabelExpires: "1799999999"}},
	}
	f := &fakeEngine{}
	p, out := fakeRun(t, f, now)
	p.sweep(context.Background(), all)
	if got := strings.Join(f.calls, ", "); got != "stop expired0000001, remove expired0000001" {
		t.Errorf("calls: %s", got)
	}
	if !strings.Contains(out.String(), "removing the expired tunnel container of tunnel old") {
		t.Errorf("output: %s", out.String())
	}
}

func TestFailedStartRemovesWhatWasCreated(t *testing.T) {
	f := &fakeEngine{start: func(string) error { return errors.New("boom") }}
	p, _ := fakeRun(t, f, time.Now())
	_, err := p.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("got %v", err)
	}
	want := "create sauce-connect-fake, start id-sauce-connect-fake, stop id-sauce-connect-fake, remove id-sauce-connect-fake"
	if got := strings.Join(f.calls, ", "); got != want {
		t.Errorf("calls:\n got %s\nwant %s", got, want)
	}
}
