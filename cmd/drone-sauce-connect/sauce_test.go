package main_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/internal/testenv"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

// The tunnel as Sauce Labs sees it: a tunnel name is account-wide, so two
// runners with engines of their own (the machine's and the suite's second
// dockerd) share one Sauce account, played by the REST double
// (testdata/sc-standin/rest.go), which follows Sauce's documentation: a
// new tunnel shuts the running ones of its name down unless both are in a
// pool. Sauce's cloud cannot run here; both engines are real.

// sauceAccount starts a REST double for the test; sauceEnv points a
// plugin and its SC at it.
func sauceAccount(t *testing.T, flags ...string) *testenv.SauceAPI {
	t.Helper()
	api, err := testenv.StartSauceAPI(flags...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.Stop)
	return api
}

func sauceEnv(api *testenv.SauceAPI) []string {
	return []string{"PLUGIN_REST_URL=" + api.URL, `PLUGIN_ENV={"SAUCE_STANDIN_READY_DELAY":"300ms","SAUCE_STANDIN_REST_URL":"` + api.URL + `"}`}
}

// ghLeg is one leg of a GitHub matrix job on a runner of its own: the
// variables GitHub sets (the same for every leg) and the files it hands
// the action.
type ghLeg struct {
	dir, host string
}

func (l ghLeg) env(extra ...string) []string {
	return append([]string{"DOCKER_HOST=" + l.host, "GITHUB_ACTIONS=true", "GITHUB_REPOSITORY=acme/web", "GITHUB_RUN_ID=4242", "GITHUB_RUN_ATTEMPT=1",
		"GITHUB_JOB=browser-tests", "GITHUB_OUTPUT=" + filepath.Join(l.dir, "output"), "GITHUB_STATE=" + filepath.Join(l.dir, "state"),
		"GITHUB_ENV=" + filepath.Join(l.dir, "env")}, extra...)
}

// file returns what the step wrote to a key of one of its files.
func (l ghLeg) file(t *testing.T, name, key string) string {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(l.dir, name))
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+"="); ok {
			return v
		}
	}
	t.Fatalf("no %s in %s:\n%s", key, name, b)
	return ""
}

// postBinary is the plugin under its post step's name, as action.yml's
// post-entrypoint runs it.
func postBinary(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), plugin.PostName)
	if err := os.Symlink(binary, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestMatrixLegsOnTwoEngines: two legs of one matrix job, every GITHUB_*
// variable the same, on two runners with engines of their own, at once:
// each opens a tunnel of its own name, both stay running at Sauce while
// both legs run (one default name would have had SC5 shut the first down),
// the name reaches the job's later steps (GITHUB_ENV) and the post step
// (GITHUB_STATE), and each post step ends its own tunnel only.
func TestMatrixLegsOnTwoEngines(t *testing.T) {
	skipShort(t)
	d, e2 := secondEngine(t)
	api := sauceAccount(t)
	legs := []ghLeg{{dir: t.TempDir(), host: eng.Host}, {dir: t.TempDir(), host: d.Socket}}
	var starts []*proc
	for _, l := range legs {
		starts = append(starts, startBinary(t, append(l.env(), sauceEnv(api)...)...))
	}
	var names []string
	for i, p := range starts {
		if code := p.wait(t); code != 0 {
			t.Fatalf("leg %d's start exited %d:\n%s", i, code, p.output())
		}
		names = append(names, legs[i].file(t, "output", "tunnel_name"))
		if legs[i].file(t, "env", "SAUCE_TUNNEL_NAME") != names[i] || legs[i].file(t, "state", "TUNNEL_NAME") != names[i] {
			t.Errorf("leg %d did not hand its name %s on", i, names[i])
		}
		if !strings.Contains(p.output(), "tunnel "+names[i]+" confirmed by Sauce Labs") {
			t.Errorf("leg %d's tunnel was not confirmed:\n%s", i, p.output())
		}
	}
	t.Cleanup(func() { testenv.RemoveTunnel(eng, names[0]); testenv.RemoveTunnel(e2, names[1]) })
	if names[0] == names[1] || !strings.HasPrefix(names[0], "acme-web-4242-1-browser-tests-") {
		t.Fatalf("the legs' tunnels are named %q and %q", names[0], names[1])
	}
	for i, n := range names {
		if ids, err := api.Running(n); err != nil || len(ids) != 1 || ids[0] != legs[i].file(t, "output", "tunnel_id") {
			t.Fatalf("Sauce runs %v of leg %d's tunnel %s (%v)", ids, i, n, err)
		}
	}
	post := postBinary(t)
	for i, l := range legs {
		p := startBinaryAs(t, post, append(l.env("STATE_TUNNEL_NAME="+names[i]), sauceEnv(api)...)...)
		if code := p.wait(t); code != 0 {
			t.Fatalf("leg %d's post step exited %d:\n%s", i, code, p.output())
		}
		if ids, _ := api.Running(names[i]); len(ids) != 0 {
			t.Errorf("leg %d's tunnel still runs at Sauce after its post step", i)
		}
		if i == 0 {
			if ids, _ := api.Running(names[1]); len(ids) != 1 {
				t.Errorf("leg 0's post step ended leg 1's tunnel too")
			}
		}
		if by, _ := api.DeletesOf(names[i]); !slices.Equal(by, []string{"sc"}) {
			t.Errorf("leg %d's tunnel was closed by %v, want SC itself", i, by)
		}
	}
	testenv.AssertNoTunnel(t, eng, names[0])
	testenv.AssertNoTunnel(t, e2, names[1])
}

// TestStaticNameOnTwoEngines: one static tunnel_name on two engines.
// Without a pool the second start shuts the first tunnel down at Sauce
// (SC5's rule): it warns naming that tunnel, the first SC exits, and the
// first pipeline's stop step deletes nothing of the second's tunnel (it
// deleted every tunnel of the name before). In a pool both run; one SC
// killed, its stop step deletes its own tunnel by ID and the other runs on.
func TestStaticNameOnTwoEngines(t *testing.T) {
	skipShort(t)
	d, e2 := secondEngine(t)
	for _, pool := range []bool{false, true} {
		name := map[bool]string{false: "own", true: "pool"}[pool]
		t.Run(name, func(t *testing.T) {
			api := sauceAccount(t)
			tunnel := "static-" + name + "-" + testenv.Random(6)
			t.Cleanup(func() { testenv.RemoveTunnel(eng, tunnel); testenv.RemoveTunnel(e2, tunnel) })
			env := func(host string, extra ...string) []string {
				return append(append([]string{"DOCKER_HOST=" + host, "PLUGIN_TUNNEL_NAME=" + tunnel, "PLUGIN_TUNNEL_POOL=" + map[bool]string{false: "false", true: "true"}[pool]}, sauceEnv(api)...), extra...)
			}
			first := startBinary(t, env(eng.Host)...)
			if code := first.wait(t); code != 0 {
				t.Fatalf("the first start exited %d:\n%s", code, first.output())
			}
			firstID := tunnelID(t, api, tunnel)
			second := startBinary(t, env(d.Socket)...)
			if code := second.wait(t); code != 0 {
				t.Fatalf("the second start exited %d:\n%s", code, second.output())
			}
			warned := strings.Contains(second.output(), "tunnel name "+tunnel+" is already in use at Sauce Labs: "+tunnel+" (id "+firstID)
			if warned == pool {
				t.Errorf("pool %v, warned %v:\n%s", pool, warned, second.output())
			}
			sc := onlyContainer(t, eng, tunnel)
			if pool {
				if out, err := exec.Command("docker", "kill", sc).CombinedOutput(); err != nil {
					t.Fatalf("docker kill: %v: %s", err, out)
				}
			}
			awaitExited(t, eng, sc)
			stop := startBinary(t, env(eng.Host, "PLUGIN_ACTION=stop")...)
			if code := stop.wait(t); code != 0 {
				t.Fatalf("the first stop exited %d:\n%s", code, stop.output())
			}
			running, _ := api.Running(tunnel)
			if len(running) != 1 || running[0] == firstID {
				t.Fatalf("after the first pipeline's stop Sauce runs %v of %s, want the second's tunnel alone:\n%s", running, tunnel, stop.output())
			}
			wantBy := map[bool][]string{false: nil, true: {"plugin"}}[pool]
			if by, _ := api.DeletesOf(tunnel); !slices.Equal(by, wantBy) {
				t.Errorf("deleted by %v, want %v:\n%s", by, wantBy, stop.output())
			}
			last := startBinary(t, env(d.Socket, "PLUGIN_ACTION=stop")...)
			if code := last.wait(t); code != 0 {
				t.Fatalf("the second stop exited %d:\n%s", code, last.output())
			}
			testenv.AssertNoTunnel(t, eng, tunnel)
			testenv.AssertNoTunnel(t, e2, tunnel)
		})
	}
}

// tunnelID is the ID of the one running tunnel of that name at Sauce.
func tunnelID(t *testing.T, api *testenv.SauceAPI, tunnel string) string {
	t.Helper()
	ids, err := api.Running(tunnel)
	if err != nil || len(ids) != 1 {
		t.Fatalf("Sauce runs %v of %s (%v)", ids, tunnel, err)
	}
	return ids[0]
}

// onlyContainer is the ID of the tunnel's one SC container on e.
func onlyContainer(t *testing.T, e *engine.Engine, tunnel string) string {
	t.Helper()
	cs, err := e.ListContainers(context.Background(), map[string]string{plugin.LabelTunnel: tunnel, plugin.LabelRole: plugin.RoleTunnel})
	if err != nil || len(cs) != 1 {
		t.Fatalf("%d SC containers of %s (%v)", len(cs), tunnel, err)
	}
	return cs[0].ID
}

// awaitExited waits until container id has ended.
func awaitExited(t *testing.T, e *engine.Engine, id string) {
	t.Helper()
	for began := time.Now(); time.Since(began) < 20*time.Second; time.Sleep(100 * time.Millisecond) {
		if c, err := e.InspectContainer(context.Background(), id); err == nil && !c.State.Running {
			return
		}
	}
	t.Fatalf("container %s did not end", engine.ShortID(id))
}
