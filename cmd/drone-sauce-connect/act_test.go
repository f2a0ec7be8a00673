package main_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/drone-sauce-connect/drone-sauce-connect/internal/testenv"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
)

// These tests run the README's GitHub workflow with act (nektos/act), the
// runner that runs GitHub workflows locally. act runs a container action in
// a container of its own for each of the main and the post step and
// removes it right after the step; in its default mode the job runs in a
// container (here busybox, not the plugin's image) and the action borrows
// the job container's network namespace (network_mode container:<job>), in
// which the hostname and /etc/hostname are the job container's; in its
// self-hosted mode the job runs on the host, the action on the default
// bridge, and act hands the action host paths for GITHUB_OUTPUT and
// GITHUB_STATE that are not mounted into its container, so the action can
// set no output and the post step sees no saved state. The workflow is the
// README's but for the image names (the action's docker:// image is the
// test's) and the test step's commands (no npm here).

// actRun is the README's workflow run by act in a workspace of its own.
type actRun struct {
	t         *testing.T
	job       string
	dir, home string
	repo      string
	doc       map[string]any
	out       testenv.SafeBuffer
	code      int
	// app is the app under test's URL: it listens on the host's 127.0.0.1,
	// as an app a job starts on the runner does; appBody is its answer.
	app, appBody string
}

// newActRun lays out a git workspace with the README's workflow, action.yml
// (its image the test's plugin image) at the root, so that `uses: ./` is the
// action, and a git remote naming a repository of its own.
func newActRun(t *testing.T) *actRun { return newActJob(t, "browser-tests") }

// newActJob is newActRun for another job of the workflow.
func newActJob(t *testing.T, jobName string) *actRun {
	t.Helper()
	testenv.Runner(t, "act")
	needBusybox(t)
	r := &actRun{t: t, job: jobName, dir: t.TempDir(), home: t.TempDir(), repo: "acme/web-" + testenv.Random(6), appBody: "the app under test " + testenv.Random(6)}
	r.app = serveApp(t, r.appBody)
	action, err := os.ReadFile(filepath.Join(testenv.Root(), "action.yml"))
	if err != nil {
		t.Fatal(err)
	}
	action = []byte(strings.ReplaceAll(string(action), "docker://"+readmeImage, "docker://"+pluginImage))
	if !strings.Contains(string(action), pluginImage) {
		t.Fatalf("action.yml does not run docker://%s", readmeImage)
	}
	raw, err := os.ReadFile(filepath.Join(testenv.Root(), "testdata", "pipelines", "github.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &r.doc); err != nil {
		t.Fatal(err)
	}
	r.doc["name"] = "browser-tests-" + testenv.Random(6) // act names its containers after it
	jobs := r.doc["jobs"].(map[string]any)
	job := jobs[jobName].(map[string]any)
	r.doc["jobs"] = map[string]any{jobName: job}
	job["defaults"] = map[string]any{"run": map[string]any{"shell": "sh"}}
	var steps []any
	for _, s := range job["steps"].([]any) {
		step := s.(map[string]any)
		uses, _ := step["uses"].(string)
		switch {
		case strings.HasPrefix(uses, "drone-sauce-connect/drone-sauce-connect@"):
			step["uses"] = "./"
		case uses == "docker://"+readmeImage:
			step["uses"] = "docker://" + pluginImage
		case strings.HasPrefix(uses, "actions/upload-artifact@"):
			// No download of actions here: check that the log to upload is there.
			step = map[string]any{"if": step["if"], "run": "busybox test -s sauce-connect.log && busybox grep -q 'tunnel closed, bye' sauce-connect.log"}
		}
		isPlugin := step["uses"] == "./" || step["uses"] == "docker://"+pluginImage
		if with, ok := step["with"].(map[string]any); ok && isPlugin {
			with["rest_url"] = offlineREST
			if with["action"] == nil {
				with["image"], with["pull"], with["api_host_port"] = standin, "never", "0"
				with["env"] = `{"SAUCE_STANDIN_READY_DELAY":"300ms"}`
			}
		}
		if run, ok := step["run"].(string); ok && !strings.HasPrefix(run, "busybox test") {
			// The README's step env names the tunnel and its address; a
			// browser in Sauce's cloud asks the tunnel for the app on localhost.
			step["run"] = r.script("$SAUCE_CONNECT_API")
		}
		steps = append(steps, step)
	}
	job["steps"] = steps
	// An empty ~/.actrc keeps act from asking which image size to use.
	for path, data := range map[string][]byte{filepath.Join(r.dir, "action.yml"): action, filepath.Join(r.home, ".actrc"): nil} {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{{"init", "-q"}, {"remote", "add", "origin", "https://github.com/" + r.repo + ".git"}} {
		if out, err := exec.Command("git", append([]string{"-C", r.dir}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	t.Cleanup(r.removeLeftovers)
	return r
}

// sauceWith returns the `with` of the action's step.
func (r *actRun) sauceWith() map[string]any {
	for _, s := range r.doc["jobs"].(map[string]any)[r.job].(map[string]any)["steps"].([]any) {
		if step := s.(map[string]any); step["uses"] == "./" || step["uses"] == "docker://"+pluginImage && step["with"].(map[string]any)["action"] == nil {
			return step["with"].(map[string]any)
		}
	}
	r.t.Fatal("no action step")
	return nil
}

// run runs the job with act, platform being act's -P value for ubuntu-latest.
func (r *actRun) run(platform string) {
	r.t.Helper()
	wf := filepath.Join(r.dir, ".github", "workflows", "ci.yml")
	data, err := yaml.Marshal(r.doc)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(wf), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(wf, data, 0o644); err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, testenv.Runner(r.t, "act"), "push", "-W", wf, "-j", r.job,
		"-P", "ubuntu-latest="+platform, "--pull=false", "--rm",
		"-s", "SAUCE_USERNAME=alice", "-s", "SAUCE_ACCESS_KEY="+accessKey)
	cmd.Dir = r.dir
	cmd.Env = append(os.Environ(), "HOME="+r.home)
	cmd.Stdout, cmd.Stderr = &r.out, &r.out
	err = cmd.Run()
	noKey(r.t, "act's output", r.out.String())
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		r.t.Fatal(err)
	}
}

var actTunnel = regexp.MustCompile(`tunnel (\S+) is up in region`)

// tunnel is the tunnel's name, as the main step printed it.
func (r *actRun) tunnel() string {
	r.t.Helper()
	m := actTunnel.FindStringSubmatch(r.out.String())
	if m == nil {
		r.t.Fatalf("the action opened no tunnel:\n%s", r.out.String())
	}
	return m[1]
}

// assertClean requires that no container of the tunnel is left once act
// has returned, and none of act's own.
func (r *actRun) assertClean(tunnel string) {
	r.t.Helper()
	if cs := r.left(); len(cs) > 0 {
		r.t.Errorf("left after act: %v\n%s", cs, r.out.String())
	}
	testenv.AssertNoTunnel(r.t, eng, tunnel)
}

// left lists what of the run is on the engine: the plugin's containers for
// this repository's tunnels and act's containers for this workflow.
func (r *actRun) left() []string {
	r.t.Helper()
	cs, err := eng.ListContainers(context.Background(), map[string]string{plugin.LabelManaged: "true"})
	if err != nil {
		r.t.Fatal(err)
	}
	prefix := strings.ReplaceAll(r.repo, "/", "-")
	var out []string
	for _, c := range cs {
		if strings.HasPrefix(c.Labels[plugin.LabelTunnel], prefix) {
			out = append(out, strings.Join(c.Names, ","))
		}
	}
	act, err := eng.ListContainers(context.Background(), nil)
	if err != nil {
		r.t.Fatal(err)
	}
	name := "act-" + r.doc["name"].(string)
	for _, c := range act {
		if strings.HasPrefix(strings.Join(c.Names, ","), name) {
			out = append(out, strings.Join(c.Names, ","))
		}
	}
	return out
}

func (r *actRun) removeLeftovers() {
	prefix := strings.ReplaceAll(r.repo, "/", "-")
	cs, _ := eng.ListContainers(context.Background(), map[string]string{plugin.LabelManaged: "true"})
	for _, c := range cs {
		if strings.HasPrefix(c.Labels[plugin.LabelTunnel], prefix) {
			_ = eng.RemoveContainer(context.Background(), c.ID)
		}
	}
}

// script is the job's test step: it reaches the tunnel at api and has the
// stand-in fetch the app on the runner's localhost through it.
func (r *actRun) script(api string) string {
	return "echo \"tunnel=$SAUCE_TUNNEL_NAME\"\nbusybox wget -q -O- \"" + api + "/readyz\"\n" +
		"busybox wget -q -O- \"" + api + "/standin/get?url=" + url.QueryEscape(r.app) + "\""
}

// reachedApp requires the test step to have got the app's answer through
// the tunnel.
func (r *actRun) reachedApp() {
	r.t.Helper()
	if !strings.Contains(r.out.String(), "| "+r.appBody) {
		r.t.Errorf("the tunnel did not reach the app on the runner's localhost (%s):\n%s", r.app, r.out.String())
	}
}

// serveApp serves body on the host's loopback until the test ends.
func serveApp(t *testing.T, body string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, body) }), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return fmt.Sprintf("http://localhost:%d/", l.Addr().(*net.TCPAddr).Port)
}

// actToolCache is the volume act creates for /opt/hostedtoolcache.
const actToolCache = "act-toolcache"

// freePort returns a loopback port that is free now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestAct runs the README's workflow with act: in act's default mode (the
// job in a busybox container, the action in its namespace) and its
// self-hosted mode (the job on the host), with a main step that fails, and
// checks that a later step reaches the tunnel, that the post step removes
// it, and that nothing is left.
func TestAct(t *testing.T) {
	skipShort(t)
	// act keeps its tool cache in a volume it never removes.
	if !testenv.VolumeExists(actToolCache) {
		t.Cleanup(func() { testenv.RemoveVolume(actToolCache) })
	}
	t.Run("job-container", func(t *testing.T) {
		t.Parallel()
		r := newActRun(t)
		r.run(busybox)
		if r.code != 0 {
			t.Fatalf("act exited %d:\n%s", r.code, r.out.String())
		}
		tunnel := r.tunnel()
		if !strings.Contains(r.out.String(), "tunnel="+tunnel) || !strings.Contains(r.out.String(), "| OK") {
			t.Errorf("the run step did not get the tunnel_name and host_api_url outputs, or did not reach the tunnel:\n%s", r.out.String())
		}
		r.reachedApp()
		if !strings.Contains(r.out.String(), "tunnel "+tunnel+" stopped and removed") {
			t.Errorf("the post step did not stop the tunnel:\n%s", r.out.String())
		}
		if strings.Contains(r.out.String(), "watchdog exited") {
			t.Errorf("the watchdog did not run:\n%s", r.out.String())
		}
		r.assertClean(tunnel)
	})
	t.Run("plain-docker-step", func(t *testing.T) {
		// The README's second job: uses: docker:// with no post step, an
		// explicit stop step that saves SC's log, and its upload.
		t.Parallel()
		r := newActJob(t, "plain-docker-step")
		r.run(busybox)
		if r.code != 0 {
			t.Fatalf("act exited %d:\n%s", r.code, r.out.String())
		}
		tunnel := r.tunnel()
		r.reachedApp()
		if !strings.Contains(r.out.String(), "tunnel "+tunnel+" stopped and removed") {
			t.Errorf("the stop step did not stop the tunnel:\n%s", r.out.String())
		}
		r.assertClean(tunnel)
	})
	t.Run("matrix", func(t *testing.T) {
		// Two legs of a matrix, at once, every GITHUB_* variable the same,
		// one Sauce account (the REST double): each leg opens, confirms and
		// closes a tunnel of its own; with one default name SC5 would shut
		// the first leg's tunnel down when the second started.
		t.Parallel()
		r := newActRun(t)
		api := sauceAccount(t)
		with := r.sauceWith()
		with["rest_url"], with["env"] = api.URL, `{"SAUCE_STANDIN_READY_DELAY":"300ms","SAUCE_STANDIN_REST_URL":"`+api.URL+`"}`
		job := r.doc["jobs"].(map[string]any)[r.job].(map[string]any)
		job["strategy"] = map[string]any{"matrix": map[string]any{"browser": []any{"chrome", "firefox"}}}
		r.run(busybox)
		if r.code != 0 {
			t.Fatalf("act exited %d:\n%s", r.code, r.out.String())
		}
		var tunnels []string
		for _, m := range actTunnel.FindAllStringSubmatch(r.out.String(), -1) {
			tunnels = append(tunnels, m[1])
		}
		if len(tunnels) != 2 || tunnels[0] == tunnels[1] {
			t.Fatalf("the legs opened %v, want two tunnels of their own:\n%s", tunnels, r.out.String())
		}
		for _, tunnel := range tunnels {
			for _, want := range []string{"tunnel " + tunnel + " confirmed by Sauce Labs", "tunnel=" + tunnel, "tunnel " + tunnel + " stopped and removed"} {
				if !strings.Contains(r.out.String(), want) {
					t.Errorf("no %q:\n%s", want, r.out.String())
				}
			}
			if by, _ := api.DeletesOf(tunnel); len(by) != 1 || by[0] != "sc" {
				t.Errorf("tunnel %s was closed by %v, want its own SC at its post step", tunnel, by)
			}
			testenv.AssertNoTunnel(t, eng, tunnel)
		}
		if cs := r.left(); len(cs) > 0 {
			t.Errorf("left after act: %v", cs)
		}
	})
	t.Run("self-hosted", func(t *testing.T) {
		t.Parallel()
		r := newActRun(t)
		port := freePort(t)
		// act gives the action no outputs here: the step uses the fixed port.
		r.sauceWith()["api_host_port"] = fmt.Sprint(port)
		for _, s := range r.doc["jobs"].(map[string]any)[r.job].(map[string]any)["steps"].([]any) {
			if step := s.(map[string]any); step["run"] != nil {
				step["run"] = r.script(fmt.Sprintf("http://127.0.0.1:%d", port))
			}
		}
		r.run("-self-hosted")
		if r.code != 0 {
			t.Fatalf("act exited %d:\n%s", r.code, r.out.String())
		}
		tunnel := r.tunnel()
		if !strings.Contains(r.out.String(), "| OK") {
			t.Errorf("the host step did not reach the tunnel:\n%s", r.out.String())
		}
		if strings.Contains(r.out.String(), "(reused") || !strings.Contains(r.out.String(), "tunnel "+tunnel+" stopped and removed") {
			t.Errorf("the post step did not stop the tunnel (without saved state):\n%s", r.out.String())
		}
		r.reachedApp()
		r.assertClean(tunnel)
	})
	t.Run("main-step-fails", func(t *testing.T) {
		t.Parallel()
		r := newActRun(t)
		with := r.sauceWith()
		with["env"], with["ready_timeout"], with["retries"] = `{"SAUCE_STANDIN_MODE":"never-ready"}`, "2s", "0"
		r.run(busybox)
		if r.code == 0 {
			t.Fatalf("act passed with a tunnel that never became ready:\n%s", r.out.String())
		}
		out := r.out.String()
		i := strings.Index(out, "Run Post ")
		if i < 0 {
			t.Fatalf("no post step ran:\n%s", out)
		}
		post := out[i:]
		if strings.Contains(post, "docker run -d") || strings.Contains(post, "is up in region") || !strings.Contains(post, "Success - Post") {
			t.Errorf("the post step started a tunnel or failed:\n%s", post)
		}
		if cs := r.left(); len(cs) > 0 {
			t.Errorf("left after act: %v\n%s", cs, out)
		}
	})
}
