package docker

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/drone-sauce-connect/drone-sauce-connect/internal/testenv"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

// TestLocateGolden runs locate, through the real engine client, against
// the Docker API's recorded answers (testdata/locate, made by its
// record.sh from containers shaped as each runner makes its steps) and
// compares the site, and where it places SC, with
// testdata/golden/locate-<case>.json, as
// drone-runner-docker tests its compiler. The replaying server answers as
// the engine did: the list, each inspect, and the marker file's stat in the
// plugin's own container only.
func TestLocateGolden(t *testing.T) {
	cases, err := filepath.Glob(filepath.Join(testenv.Root(), "testdata", "locate", "*", "proc.json"))
	if err != nil || len(cases) < 5 {
		t.Fatalf("recorded cases %v (%v): want drone, act, harness, github and host", cases, err)
	}
	for _, proc := range cases {
		dir := filepath.Dir(proc)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			rec := readRecording(t, dir)
			eng, access := replayEngine(t, rec)
			all, err := eng.ListContainers(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			c := locateConfig(t, rec)
			here := procSelf{marker: func() (string, func()) { return "/.drone-sauce-connect-self-golden", func() {} }}
			if guess := rec.hostnameOwner(); guess != "" {
				// Docker's default hostname is the short ID, and its bind
				// mount names the container's directory: in a borrowed
				// namespace, the owner's.
				here.hostname = guess[:12]
				here.mountinfo = "1 2 0:1 /var/lib/docker/containers/" + guess + "/hostname /etc/hostname rw - ext4 /dev/root rw\n"
			}
			log := logrus.New()
			log.SetOutput(io.Discard)
			st, err := locate(context.Background(), eng, c, access, all, here, logrus.NewEntry(log), rec.now)
			if err != nil {
				t.Fatal(err)
			}
			if st.FreePort != 0 {
				st.FreePort = 1 // picked afresh each run: only whether one is picked is golden
			}
			pl := place(c, st, engine.Image{User: "65532"})
			got, err := json.MarshalIndent(map[string]any{"site": st, "placement": pl}, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			testenv.Golden(t, "locate-"+filepath.Base(dir)+".json", string(got)+"\n")
		})
	}
}

// recording is one case's recorded answers.
type recording struct {
	list    json.RawMessage
	inspect map[string]json.RawMessage // by ID
	self    string
	env     []string
	now     time.Time
}

// hostnameOwner is the container whose hostname the plugin's own
// container has: its own, or the owner's of the network namespace it
// borrows ("" on the host).
func (rec recording) hostnameOwner() string {
	var c struct{ HostConfig struct{ NetworkMode string } }
	_ = json.Unmarshal(rec.inspect[rec.self], &c)
	if owner, ok := strings.CutPrefix(c.HostConfig.NetworkMode, "container:"); ok {
		return owner
	}
	return rec.self
}

func readRecording(t *testing.T, dir string) recording {
	t.Helper()
	rec := recording{inspect: map[string]json.RawMessage{}, now: time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)}
	var proc struct{ Self string }
	read := func(name string, into any) json.RawMessage {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if into != nil {
			if err := json.Unmarshal(b, into); err != nil {
				t.Fatal(err)
			}
		}
		return b
	}
	read("proc.json", &proc)
	rec.self = proc.Self
	rec.list = read("list.json", nil)
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	for _, f := range files {
		id := strings.TrimSuffix(filepath.Base(f), ".json")
		if len(id) != 64 {
			continue
		}
		var c struct {
			Created time.Time
			Config  struct{ Env []string }
		}
		rec.inspect[id] = read(filepath.Base(f), &c)
		if id == rec.self {
			rec.env, rec.now = c.Config.Env, c.Created.Add(2*time.Second)
		}
	}
	return rec
}

// locateConfig is the settings' defaults in the recorded step's pipeline.
func locateConfig(t *testing.T, rec recording) plugin.Config {
	t.Helper()
	var p plugin.Pipeline
	for _, kv := range rec.env {
		switch {
		case kv == "DRONE=true":
			p.Drone = "true"
		case kv == "GITHUB_ACTIONS=true":
			p.GitHubActions = "true"
		case strings.HasPrefix(kv, "HARNESS_STAGE_ID="):
			p.HarnessStageID = strings.TrimPrefix(kv, "HARNESS_STAGE_ID=")
		}
	}
	set := plugin.DefaultSettings()
	set.Username, set.AccessKey, set.TunnelName, set.Region = "u", "k", "golden", "us-west"
	c, err := set.Config(p, "h", "r")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var apiPath = regexp.MustCompile(`^/v[0-9.]+(/containers/(json|([^/]+)/(json|archive)))$`)

// replayEngine serves rec as a Docker engine does and connects the
// engine client to it.
func replayEngine(t *testing.T, rec recording) (*engine.Engine, engine.Access) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.41")
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/_ping" {
			_, _ = w.Write([]byte("OK"))
			return
		}
		m := apiPath.FindStringSubmatch(r.URL.Path)
		switch {
		case m == nil:
			t.Errorf("no recorded answer for %s %s", r.Method, r.URL)
			http.Error(w, `{"message":"not recorded"}`, http.StatusNotImplemented)
		case m[2] == "json":
			_, _ = w.Write(rec.list)
		case m[4] == "archive":
			// Only the plugin's own container holds its marker.
			if id := replayFind(rec, m[3]); id == "" || id != rec.self {
				http.Error(w, `{"message":"Could not find the file"}`, http.StatusNotFound)
				return
			}
			stat, _ := json.Marshal(map[string]any{"name": filepath.Base(r.URL.Query().Get("path")), "size": 0, "mode": 0o600})
			w.Header().Set("X-Docker-Container-Path-Stat", base64.StdEncoding.EncodeToString(stat))
		default:
			id := replayFind(rec, m[3])
			if id == "" {
				http.Error(w, `{"message":"No such container: `+m[3]+`"}`, http.StatusNotFound)
				return
			}
			_, _ = w.Write(rec.inspect[id])
		}
	}))
	t.Cleanup(srv.Close)
	access := engine.Access{Host: "tcp://" + srv.Listener.Addr().String()}
	eng, err := engine.Connect(context.Background(), access)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Close() })
	// locate reasons about the engine the plugin reaches on its socket.
	return eng, engine.Access{Host: "unix:///var/run/docker.sock"}
}

// replayFind resolves an ID, a prefix or a name among the recorded
// inspect answers.
func replayFind(rec recording, ref string) string {
	ids := make([]string, 0, len(rec.inspect))
	for id := range rec.inspect {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		var c struct{ Name string }
		_ = json.Unmarshal(rec.inspect[id], &c)
		if strings.HasPrefix(id, ref) || strings.TrimPrefix(c.Name, "/") == ref {
			return id
		}
	}
	return ""
}
