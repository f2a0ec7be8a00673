package main_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/drone-sauce-connect/drone-sauce-connect/internal/testenv"
)

// These tests run the README's Drone pipelines with the real runner:
// `drone exec` (drone-cli 1.8.0), which runs drone-runner-docker's engine.
// Its teardown (engine.Destroy) SIGKILLs the pipeline's containers, removes
// them in step order, removes its volumes, then calls NetworkRemove once
// and ignores the error; on cancel (SIGINT) it does the same, and skips
// every step still to come, a stop step included. Only the image names
// and the test step's commands are changed: node:20 and the Sauce Labs
// image cannot be pulled here.

// cleanWithin bounds how long a pipeline's leftovers may take to go.
const cleanWithin = 30 * time.Second

// droneBuild is one pipeline file run by `drone exec`.
type droneBuild struct {
	t    *testing.T
	name string // the pipeline's (stage's) name, unique per build
	dir  string
	doc  map[string]any
	out  testenv.SafeBuffer
	cmd  *exec.Cmd
	// exited is when drone exec returned; cleaned is how long after that
	// the last container and network of the build were gone.
	exited  time.Time
	cleaned time.Duration
}

// newDroneBuild reads a pipeline file of testdata/pipelines and makes it
// runnable offline: the plugin and SC images are the test's, the tests step
// runs in busybox without the commands that need node.
func newDroneBuild(t *testing.T, file string) *droneBuild {
	t.Helper()
	testenv.Runner(t, "drone")
	needBusybox(t)
	raw, err := os.ReadFile(filepath.Join(testenv.Root(), "testdata", "pipelines", file))
	if err != nil {
		t.Fatal(err)
	}
	b := &droneBuild{t: t, name: "dsc-" + testenv.Random(8), dir: t.TempDir()}
	if err := yaml.Unmarshal([]byte(strings.ReplaceAll(string(raw), readmeImage, pluginImage)), &b.doc); err != nil {
		t.Fatal(err)
	}
	b.doc["name"] = b.name
	for _, s := range b.containers() {
		if s["image"] != pluginImage {
			continue
		}
		settings := s["settings"].(map[string]any)
		settings["image"], settings["pull"] = standin, "never"
		settings["env"] = map[string]any{"SAUCE_STANDIN_READY_DELAY": "300ms"}
		settings["rest_url"] = offlineREST
	}
	if tests := b.step("tests"); tests != nil {
		tests["image"] = busybox
		var keep []any
		for _, c := range tests["commands"].([]any) {
			if cmd := c.(string); !strings.Contains(cmd, "node") && !strings.HasPrefix(cmd, "np") {
				keep = append(keep, cmd)
			}
		}
		tests["commands"] = append(keep, "wget -q -O- http://sauce-connect:8032/readyz")
	}
	t.Cleanup(b.removeLeftovers)
	return b
}

// readmeImage is the plugin image the README's examples name.
const readmeImage = "drone-sauce-connect/drone-sauce-connect:1"

// containers lists the pipeline's steps and services.
func (b *droneBuild) containers() []map[string]any {
	var out []map[string]any
	for _, key := range []string{"services", "steps"} {
		list, _ := b.doc[key].([]any)
		for _, s := range list {
			out = append(out, s.(map[string]any))
		}
	}
	return out
}

func (b *droneBuild) step(name string) map[string]any {
	for _, s := range b.containers() {
		if s["name"] == name {
			return s
		}
	}
	return nil
}

// without drops the named steps.
func (b *droneBuild) without(names ...string) {
	steps := b.doc["steps"].([]any)
	b.doc["steps"] = slices.DeleteFunc(steps, func(s any) bool { return slices.Contains(names, s.(map[string]any)["name"].(string)) })
}

// last moves the named step to the end of the pipeline.
func (b *droneBuild) last(name string) {
	s := b.step(name)
	b.without(name)
	b.doc["steps"] = append(b.doc["steps"].([]any), s)
}

// start runs drone exec in the background.
func (b *droneBuild) start() {
	b.t.Helper()
	file := filepath.Join(b.dir, ".drone.yml")
	data, err := yaml.Marshal(b.doc)
	if err != nil {
		b.t.Fatal(err)
	}
	secrets := filepath.Join(b.dir, "secrets.env")
	for path, text := range map[string]string{file: string(data), secrets: "sauce_username=alice\nsauce_access_key=" + accessKey + "\n"} {
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			b.t.Fatal(err)
		}
	}
	b.cmd = exec.Command(testenv.Runner(b.t, "drone"), "exec", "--trusted", "--secret-file", secrets, "--pipeline", b.name, file)
	b.cmd.Dir = b.dir
	b.cmd.Stdout, b.cmd.Stderr = &b.out, &b.out
	if err := b.cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
}

// wait waits for drone exec and returns its exit code.
func (b *droneBuild) wait() int {
	b.t.Helper()
	err := b.cmd.Wait()
	b.exited = time.Now()
	noKey(b.t, "drone exec's output", b.out.String())
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		b.t.Fatal(err)
	}
	return 0
}

// run runs the pipeline to its end and requires it to pass.
func (b *droneBuild) run() {
	b.t.Helper()
	b.start()
	if code := b.wait(); code != 0 {
		b.t.Fatalf("drone exec exited %d:\n%s", code, b.out.String())
	}
}

// waitFor waits until drone exec's output holds text.
func (b *droneBuild) waitFor(text string) {
	b.t.Helper()
	for deadline := time.Now().Add(time.Minute); !strings.Contains(b.out.String(), text); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.t.Fatalf("no %q in drone exec's output:\n%s", text, b.out.String())
		}
	}
}

// left counts what of the build is still on the engine: Drone labels its
// containers and its network with the stage's name, and the plugin copies
// those labels onto SC and the watchdog.
func (b *droneBuild) left() (containers, networks []string) {
	ctx := context.Background()
	labels := map[string]string{"io.drone.stage.name": b.name}
	cs, err := eng.ListContainers(ctx, labels)
	if err != nil {
		b.t.Fatal(err)
	}
	for _, c := range cs {
		containers = append(containers, strings.Join(c.Names, ","))
	}
	networks, err = testenv.NetworkNames(labels)
	if err != nil {
		b.t.Fatal(err)
	}
	return containers, networks
}

// assertClean requires that nothing of the build is left within cleanWithin
// of drone exec's exit, and records how long that took.
func (b *droneBuild) assertClean() {
	b.t.Helper()
	for {
		cs, ns := b.left()
		if len(cs) == 0 && len(ns) == 0 {
			b.cleaned = time.Since(b.exited)
			b.t.Logf("runner drone-exec: %s clean %s after drone exec exited", b.name, b.cleaned.Round(time.Millisecond))
			return
		}
		if time.Since(b.exited) > cleanWithin {
			b.t.Fatalf("%s after drone exec exited, left: containers %v, networks %v\n%s", cleanWithin, cs, ns, b.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// removeLeftovers removes what a failed test left, so that the engine stays clean.
func (b *droneBuild) removeLeftovers() {
	ctx := context.Background()
	labels := map[string]string{"io.drone.stage.name": b.name}
	cs, _ := eng.ListContainers(ctx, labels)
	for _, c := range cs {
		_ = eng.RemoveContainer(ctx, c.ID)
	}
	ns, _ := testenv.NetworkNames(labels)
	for _, n := range ns {
		_ = eng.RemoveNetwork(ctx, n)
	}
}

// testsPassed requires the tests step to have reached the tunnel by its
// alias. drone exec sometimes prints nothing of a step that ends within
// milliseconds (its log stream loses the race: 2 builds in 100 here); the
// step's commands run under set -e, so a passed step reached the tunnel.
func (b *droneBuild) testsPassed(passed bool) {
	b.t.Helper()
	out := b.out.String()
	if !strings.Contains(out, "[tests:") && passed {
		b.t.Log("drone exec printed no log of the tests step; it passed")
		return
	}
	if !strings.Contains(out, "+ wget -q -O- http://sauce-connect:8032/readyz") || !strings.Contains(out, "OK") {
		b.t.Errorf("the tests step did not reach http://sauce-connect:8032:\n%s", out)
	}
}

// droneScenarios are the ways a build with the tunnel can end. Each runs
// its build and leaves the assertions on the end state to the caller.
var droneScenarios = []struct {
	name string
	run  func(t *testing.T) *droneBuild
}{
	{"stop-step", func(t *testing.T) *droneBuild {
		b := newDroneBuild(t, "drone.yml")
		b.run()
		b.testsPassed(true)
		if !strings.Contains(b.out.String(), "stopped and removed") {
			t.Errorf("the stop step did not stop the tunnel:\n%s", b.out.String())
		}
		return b
	}},
	{"no-stop-step", func(t *testing.T) *droneBuild {
		b := newDroneBuild(t, "drone.yml")
		b.without("stop-sauce-connect")
		b.run()
		b.testsPassed(true)
		return b
	}},
	{"tunnel-last", func(t *testing.T) *droneBuild {
		// The runner removes the network right after the tunnel step's container.
		b := newDroneBuild(t, "drone.yml")
		b.without("stop-sauce-connect")
		b.step("tests")["commands"] = []any{"echo build done"}
		b.last("sauce-connect")
		b.run()
		if !strings.Contains(b.out.String(), "is up in region") {
			t.Errorf("the tunnel step did not open the tunnel:\n%s", b.out.String())
		}
		return b
	}},
	{"cancelled", func(t *testing.T) *droneBuild {
		b := newDroneBuild(t, "drone.yml")
		tests := b.step("tests")
		tests["commands"] = append(tests["commands"].([]any), "echo tests running", "sleep 60")
		b.start()
		b.waitFor("tests running")
		if err := b.cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		if code := b.wait(); code == 0 {
			t.Errorf("a cancelled drone exec exited 0")
		}
		if strings.Contains(b.out.String(), "stopped and removed") {
			t.Errorf("the stop step ran on cancel (Drone skips it):\n%s", b.out.String())
		}
		b.testsPassed(false)
		return b
	}},
	{"service", func(t *testing.T) *droneBuild {
		b := newDroneBuild(t, "drone-service.yml")
		b.run()
		b.testsPassed(true)
		return b
	}},
}

// TestDroneExec runs the README's Drone pipelines with drone exec: as
// written (with the stop step), without the stop step, with the tunnel as
// the last step, cancelled while the tests run, the tunnel as a service
// (action: run), and two builds at once. After each, nothing of the build
// may be left: no container, no network.
func TestDroneExec(t *testing.T) {
	skipShort(t)
	for _, sc := range droneScenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			sc.run(t).assertClean()
		})
	}
	t.Run("two-at-once", func(t *testing.T) {
		t.Parallel()
		var wg sync.WaitGroup
		builds := []*droneBuild{newDroneBuild(t, "drone.yml"), newDroneBuild(t, "drone.yml")}
		for _, b := range builds {
			b.without("stop-sauce-connect")
			b.start()
		}
		for _, b := range builds {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := b.cmd.Wait(); err != nil {
					t.Errorf("drone exec %s: %v\n%s", b.name, err, b.out.String())
				}
				b.exited = time.Now()
			}()
		}
		wg.Wait()
		for _, b := range builds {
			noKey(t, "drone exec's output", b.out.String())
			b.testsPassed(true)
			b.assertClean()
		}
	})
}

// TestDroneExecRepeated is a measurement, not part of the suite: with
// DSC_DRONE_RUNS=n it runs each scenario n times, one after another, and
// prints how many ended clean and how long that took.
func TestDroneExecRepeated(t *testing.T) {
	skipShort(t)
	var n int
	if _, err := fmt.Sscan(os.Getenv("DSC_DRONE_RUNS"), &n); err != nil || n < 1 {
		t.Skip("a measurement: set DSC_DRONE_RUNS to the number of runs")
	}
	for _, sc := range droneScenarios {
		var times []time.Duration
		for i := range n {
			t.Run(fmt.Sprintf("%s-%d", sc.name, i), func(t *testing.T) {
				b := sc.run(t)
				b.assertClean()
				times = append(times, b.cleaned)
			})
		}
		slices.Sort(times)
		if len(times) > 0 {
			t.Logf("runner drone-exec, %s: %d/%d clean; time to clean min %s, median %s, max %s", sc.name, len(times), n,
				times[0].Round(time.Millisecond), times[len(times)/2].Round(time.Millisecond), times[len(times)-1].Round(time.Millisecond))
		}
	}
}

// killMidStart runs the README's pipeline with a tunnel that never becomes
// ready and, once SC runs, kills the plugin's step container: docker rm -f
// (kill -9), or docker stop -t 0 (SIGTERM, then SIGKILL while the plugin is
// in its own cleanup). drone exec fails the step and tears the build down.
// It returns the build once drone exec has exited, and the killed step's
// exit code (-1 when removed).
func killMidStart(t *testing.T, remove bool) (*droneBuild, int) {
	t.Helper()
	b := newDroneBuild(t, "drone.yml")
	b.without("stop-sauce-connect")
	settings := b.step("sauce-connect")["settings"].(map[string]any)
	settings["env"] = map[string]any{"SAUCE_STANDIN_MODE": "never-ready"}
	b.start()
	ctx := context.Background()
	stage := map[string]string{"io.drone.stage.name": b.name}
	var plugin string
	for deadline := time.Now().Add(time.Minute); plugin == ""; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("SC never ran:\n%s", b.out.String())
		}
		cs, err := eng.ListContainers(ctx, stage)
		if err != nil {
			t.Fatal(err)
		}
		var scRunning bool
		step := ""
		for _, c := range cs {
			switch {
			case c.Labels["io.drone-sauce-connect.role"] == "tunnel" && c.State == "running":
				scRunning = true
			case c.Labels["io.drone.step.name"] == "sauce-connect" && c.Labels["io.drone-sauce-connect.role"] == "":
				step = c.ID
			}
		}
		if scRunning {
			plugin = step
		}
	}
	code := -1
	if remove {
		if err := eng.RemoveContainer(ctx, plugin); err != nil {
			t.Fatal(err)
		}
	} else {
		// The exit code from the die event: the runner may remove the
		// container as soon as it has stopped, before an inspect. The
		// subscription is made in the background: give it a moment (the
		// plugin waits for a never-ready SC meanwhile).
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		events, _ := eng.WatchContainer(wctx, plugin)
		time.Sleep(500 * time.Millisecond)
		if _, err := eng.StopContainer(ctx, plugin, 0); err != nil {
			t.Fatal(err)
		}
		for ev := range events {
			if ev.Action == "die" {
				code = ev.ExitCode
				break
			}
		}
	}
	if exit := b.wait(); exit == 0 {
		t.Errorf("drone exec passed a build whose tunnel step was killed:\n%s", b.out.String())
	}
	return b, code
}
