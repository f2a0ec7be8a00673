package main_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/internal/testenv"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/kubeapi"
)

// The real-node tier: the plugin's image runs as a step container of a
// build pod on a real kubelet (testenv.StartNode: kube-scheduler, kubelet,
// kube-proxy, a private containerd, CNI), with the build pod's own
// service-account token bound to the README's Role and HOSTNAME set by the
// kubelet, as Harness CI and Drone run steps on Kubernetes (steps start as
// drone-runner-kube starts them: testenv.BuildPod). At the end the runner
// deletes the build pod (Destroy, default grace period).
var (
	nodeOnce sync.Once
	node     *testenv.Node
	nodeErr  error
	nodeUp   time.Duration
	nodeUser = testenv.KubeUser{Name: "admin", Token: "admin-" + testenv.Random(16), Groups: []string{"system:masters"}}
)

// kubeletNode starts the node the first time a test needs it; TestMain
// stops it and fails the run if it left anything on the host.
func kubeletNode(t *testing.T) *testenv.Node {
	skipShort(t)
	needBusybox(t)
	nodeOnce.Do(func() {
		began := time.Now()
		node, nodeErr = testenv.StartNode([]testenv.KubeUser{nodeUser}, pluginImage, standin, busybox)
		nodeUp = time.Since(began)
	})
	if nodeErr != nil {
		testenv.Missing(t, fmt.Sprintf("no kubelet node: %v", nodeErr))
	}
	t.Logf("node up in %s (first test only)", nodeUp.Round(time.Millisecond))
	return node
}

// stopNode stops the node if a test started it.
func stopNode() error {
	if node == nil {
		return nil
	}
	return node.Stop()
}

// buildPod is a testenv.BuildPod failing its test on errors and checking
// every step's log for the key.
type buildPod struct {
	*testenv.BuildPod
	t *testing.T
}

// podStep is one container of the build pod.
type podStep = testenv.Step

// pipelineSecrets are the pipeline's secrets, in the Secret beside the pod.
var pipelineSecrets = map[string]string{"sauce_username": "alice", "sauce_access_key": accessKey}

func newBuildPod(t *testing.T, n *testenv.Node, name string, steps ...podStep) *buildPod {
	t.Helper()
	b, err := n.NewBuildPod(name, pipelineSecrets, steps...)
	if b != nil {
		t.Cleanup(func() { _ = b.Delete() })
	}
	if err != nil {
		t.Fatal(err)
	}
	return &buildPod{BuildPod: b, t: t}
}

// run runs a step to its end and returns its exit code and log.
func (b *buildPod) run(name string) (int, string) {
	b.t.Helper()
	code, err := b.Run(name)
	if err != nil {
		b.t.Fatal(err)
	}
	logs, err := b.Logs(name, false)
	if err != nil {
		b.t.Fatal(err)
	}
	noKey(b.t, "step "+name+"'s log", logs)
	return code, logs
}

// start starts a step (a service, a Background step) and returns at once.
func (b *buildPod) start(name string) {
	b.t.Helper()
	if err := b.Start(name); err != nil {
		b.t.Fatal(err)
	}
}

// tunnelPods lists the tunnel pods in the build pod's namespace.
func (b *buildPod) tunnelPods() []kubeapi.Pod {
	b.t.Helper()
	pods, err := node.Admin.ListPods(context.Background(), b.NS, "io.drone-sauce-connect.role=tunnel")
	if err != nil {
		b.t.Fatal(err)
	}
	return pods
}

// assertNothingLeft fails when a tunnel pod, its Secret or Service remain.
func (b *buildPod) assertNothingLeft(limit time.Duration) {
	b.t.Helper()
	waitNoTunnelPods(b.t, b.NS, limit)
}

// harnessEnv is what Harness CI gives a Plugin step on Kubernetes, with the
// plugin's settings; extra are more name, value pairs (an empty value
// removes the variable).
func harnessEnv(build string, extra ...string) map[string]string {
	env := map[string]string{
		"HARNESS_PIPELINE_ID": "browser_tests_k8s", "HARNESS_STAGE_ID": "browser_tests", "HARNESS_BUILD_ID": build,
		"DRONE_OUTPUT":   "/harness/" + testenv.Random(6) + ".out",
		"PLUGIN_BACKEND": "kubernetes", "PLUGIN_USERNAME": "alice", "PLUGIN_ACCESS_KEY": accessKey, "PLUGIN_REGION": "us-west",
		"PLUGIN_IMAGE": standin, "PLUGIN_PULL": "never", "PLUGIN_REST_URL": offlineREST,
	}
	for i := 0; i+1 < len(extra); i += 2 {
		env[extra[i]] = extra[i+1]
		if extra[i+1] == "" {
			delete(env, extra[i])
		}
	}
	return env
}

// TestKubeletPipeline is the README's Harness Kubernetes pipeline on a real
// kubelet: the tunnel pod becomes Running and Ready through its own
// readiness probe; a later step reads the outputs; a second pod reaches SC's
// API by pod IP and through the Service under the name handed on; status;
// stop shows SC's drain; nothing is left, and the key is never shown.
func TestKubeletPipeline(t *testing.T) {
	n := kubeletNode(t)
	rest, err := testenv.StartSauceAPIOn(testenv.NodeIP)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rest.Stop)
	build := strconv.Itoa(int(time.Now().UnixNano() % 1e6))
	settings := []string{"PLUGIN_KUBERNETES_SERVICE", "true", "PLUGIN_DEBUG", "true",
		"PLUGIN_ENV", `{"SAUCE_STANDIN_READY_DELAY":"300ms","SAUCE_STANDIN_DRAIN":"500ms","SAUCE_STANDIN_LEAK_KEY":"true","SAUCE_STANDIN_REST_URL":"` + rest.URL + `"}`}
	b := newBuildPod(t, n, "harness-"+testenv.Random(8),
		podStep{Name: "sauce-connect", Image: pluginImage, Env: harnessEnv(build, settings...)},
		podStep{Name: "tests", Image: busybox, Command: []string{"/bin/sh", "-c", "cat /harness/*.out"}},
		podStep{Name: "status", Image: pluginImage, Env: harnessEnv(build, "PLUGIN_ACTION", "status", "PLUGIN_ACCESS_KEY", "")},
		podStep{Name: "stop", Image: pluginImage, Env: harnessEnv(build, "PLUGIN_ACTION", "stop", "PLUGIN_ACCESS_KEY", "", "PLUGIN_REST_URL", rest.URL)},
	)
	code, out := b.run("sauce-connect")
	if code != 0 {
		t.Fatalf("start step exited with %d:\n%s", code, out)
	}
	t.Logf("start step:\n%s", out)
	pods := b.tunnelPods()
	if len(pods) != 1 {
		t.Fatalf("%d tunnel pods, want 1", len(pods))
	}
	tunnel := pods[0]
	if c, ok := tunnel.Condition("Ready"); tunnel.Status.Phase != "Running" || !ok || c.Status != "True" {
		t.Fatalf("tunnel pod %s: phase %s, Ready %+v; want Running and Ready", tunnel.Metadata.Name, tunnel.Status.Phase, c)
	}

	code, out = b.run("tests")
	api := regexp.MustCompile(`(?m)^SAUCE_CONNECT_API=(\S+)$`).FindStringSubmatch(out)
	if code != 0 || api == nil {
		t.Fatalf("the later step did not find SAUCE_CONNECT_API in the outputs (exit %d):\n%s", code, out)
	}
	u, err := url.Parse(api[1])
	if err != nil {
		t.Fatal(err)
	}
	var svc struct {
		Spec struct {
			ClusterIP string `json:"clusterIP"`
		} `json:"spec"`
	}
	if err := node.Admin.Do(context.Background(), http.MethodGet, "/api/v1/namespaces/"+b.NS+"/services/"+tunnel.Metadata.Name, nil, &svc); err != nil {
		t.Fatalf("the tunnel's Service: %v", err)
	}
	// The node has no cluster DNS: a host alias gives the name handed on
	// the Service's cluster IP, as DNS would; kube-proxy does the routing.
	byPod := "http://" + tunnel.Status.PodIP + ":8032/readyz"
	code, out = runPod(t, b.NS, []map[string]any{{"ip": svc.Spec.ClusterIP, "hostnames": []string{u.Hostname()}}},
		"wget -q -O- "+byPod+" && echo && wget -q -O- "+api[1]+"/readyz && echo && echo reached")
	if code != 0 || !strings.Contains(out, "reached") {
		t.Fatalf("a second pod could not reach SC's API by pod IP (%s) and through the Service (%s, cluster IP %s): exit %d\n%s", byPod, api[1], svc.Spec.ClusterIP, code, out)
	}

	code, out = b.run("status")
	if code != 0 || !strings.Contains(out, "ready:     true") {
		t.Fatalf("status step exited with %d:\n%s", code, out)
	}
	code, out = b.run("stop")
	if code != 0 {
		t.Fatalf("stop step exited with %d:\n%s", code, out)
	}
	t.Logf("stop step:\n%s", out)
	if !strings.Contains(out, "shutting down, draining") {
		t.Errorf("the stop step does not show SC's drain:\n%s", out)
	}
	if !strings.Contains(out, "***") {
		t.Errorf("the stand-in logged the key (SAUCE_STANDIN_LEAK_KEY), yet the stop step masked nothing:\n%s", out)
	}
	b.assertNothingLeft(10 * time.Second)
	// SC drained and closed its tunnel itself: the stop leaves the REST API alone.
	assertDeletedBy(t, rest, "browser_tests_k8s-"+build+"-browser_tests", "sc")
}

// runPod runs a busybox pod with a shell command in ns to its end.
func runPod(t *testing.T, ns string, hostAliases []map[string]any, command string) (int, string) {
	t.Helper()
	name := "later-" + testenv.Random(6)
	pod := map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": map[string]any{"name": name, "namespace": ns}}
	pod["spec"] = map[string]any{"restartPolicy": "Never", "hostAliases": hostAliases, "containers": []map[string]any{{
		"name": "step", "image": busybox, "imagePullPolicy": "Never", "command": []string{"sh", "-c", command},
	}}}
	ctx := context.Background()
	if err := node.Admin.Do(ctx, http.MethodPost, "/api/v1/namespaces/"+ns+"/pods", pod, nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		p, err := node.Admin.GetPod(ctx, ns, name)
		if err == nil && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Terminated != nil {
			logs, _ := node.Admin.PodLogs(ctx, ns, name, "step", 100)
			return int(p.Status.ContainerStatuses[0].State.Terminated.ExitCode), logs
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("pod %s did not finish within a minute", name)
	return 0, ""
}

// TestKubeletBuildPodDeleted: the runner deletes the build pod while the
// tunnel runs (a pipeline without a stop step, or cancelled), as
// drone-runner-kube's Destroy does. The garbage collector deletes the tunnel
// pod, and the kubelet terminates it gracefully (stop_timeout as its grace
// period), not by a kill.
func TestKubeletBuildPodDeleted(t *testing.T) {
	n := kubeletNode(t)
	b := newBuildPod(t, n, "drone-"+testenv.Random(8),
		podStep{Name: "sauce-connect", Image: pluginImage, Env: harnessEnv("7", "PLUGIN_STOP_TIMEOUT", "20s",
			"PLUGIN_ENV", `{"SAUCE_STANDIN_READY_DELAY":"300ms","SAUCE_STANDIN_DRAIN":"1s"}`)},
		podStep{Name: "tests", Image: busybox, Command: []string{"/bin/sh", "-c", "true"}},
	)
	if code, out := b.run("sauce-connect"); code != 0 {
		t.Fatalf("start step exited with %d:\n%s", code, out)
	}
	tunnel := b.tunnelPods()[0].Metadata.Name
	// SC's log, followed through its end: the drain shows a SIGTERM.
	logs, err := node.Admin.FollowPodLogs(context.Background(), b.NS, tunnel, "sauce-connect", 5)
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	began := time.Now()
	if err := node.Admin.Do(context.Background(), http.MethodDelete, "/api/v1/namespaces/"+b.NS+"/pods/"+b.Name, nil, nil); err != nil {
		t.Fatal(err)
	}
	var grace any
	deadline := time.Now().Add(time.Minute)
	for {
		var p map[string]any
		err := node.Admin.Do(context.Background(), http.MethodGet, "/api/v1/namespaces/"+b.NS+"/pods/"+tunnel, nil, &p)
		if kubeapi.IsNotFound(err) {
			break
		}
		// The first grace period seen is the garbage collector's; once the
		// containers have stopped, the kubelet deletes the pod again with
		// grace 0, which a later poll can see.
		if g, ok := p["metadata"].(map[string]any)["deletionGracePeriodSeconds"]; ok && grace == nil {
			grace = g
		}
		if time.Now().After(deadline) {
			t.Fatalf("tunnel pod %s still there a minute after its build pod was deleted", tunnel)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("tunnel pod gone %s after the build pod's deletion; its grace period was %v s", time.Since(began).Round(time.Millisecond), grace)
	if grace != float64(20) {
		t.Errorf("tunnel pod deleted with grace period %v, want stop_timeout's 20 s (a graceful termination)", grace)
	}
	if sc, _ := io.ReadAll(logs); !strings.Contains(string(sc), "draining for 1s") || !strings.Contains(string(sc), "tunnel closed, bye") {
		t.Errorf("SC did not drain (no SIGTERM, or killed before its end):\n%s", sc)
	}
	b.assertNothingLeft(10 * time.Second)
}

// TestKubeletBadCredentials: SC refuses the credentials (401). The start
// step fails fast with exit 5 and SC's masked log lines, and removes what it
// created.
func TestKubeletBadCredentials(t *testing.T) {
	n := kubeletNode(t)
	b := newBuildPod(t, n, "harness-"+testenv.Random(8),
		podStep{Name: "sauce-connect", Image: pluginImage, Env: harnessEnv("8",
			"PLUGIN_ENV", `{"SAUCE_STANDIN_MODE":"bad-credentials","SAUCE_STANDIN_LEAK_KEY":"true"}`)},
	)
	began := time.Now()
	code, out := b.run("sauce-connect")
	took := time.Since(began)
	if code != 5 {
		t.Fatalf("start step exited with %d, want 5 (bad credentials):\n%s", code, out)
	}
	if !strings.Contains(out, "401") || !strings.Contains(out, "***") {
		t.Errorf("the step does not show SC's masked 401 lines:\n%s", out)
	}
	t.Logf("failed in %s:\n%s", took.Round(time.Millisecond), out)
	b.assertNothingLeft(10 * time.Second)
}

// TestKubeletRetries: SC exits before ready for a reason a retry can fix (a
// network error); the Kubernetes backend starts its pod afresh, retries
// times, as the Docker backend does, then fails and leaves nothing. Rejected
// credentials are never retried (TestKubeletBadCredentials).
func TestKubeletRetries(t *testing.T) {
	n := kubeletNode(t)
	b := newBuildPod(t, n, "harness-"+testenv.Random(8),
		podStep{Name: "sauce-connect", Image: pluginImage, Env: harnessEnv("21", "PLUGIN_RETRIES", "1",
			"PLUGIN_ENV", `{"SAUCE_STANDIN_READY_DELAY":"300ms","SAUCE_STANDIN_MODE":"network-error"}`)},
	)
	code, out := b.run("sauce-connect")
	if code == 0 || strings.Count(out, "+ kubectl run ") != 2 || !strings.Contains(out, "(attempt 2 of 2)") {
		t.Fatalf("start step exited with %d; want two pods, the second as attempt 2 of 2, then a failure:\n%s", code, out)
	}
	if strings.Contains(out, "attempt 3") {
		t.Errorf("retried more than retries (1) allows:\n%s", out)
	}
	t.Logf("exit %d:\n%s", code, out)
	b.assertNothingLeft(10 * time.Second)
}

// TestKubeletImageNotOnNode: the SC image is not on the node and may not be
// pulled. The step fails with an error naming the image and the pull
// settings, and removes what it created.
func TestKubeletImageNotOnNode(t *testing.T) {
	n := kubeletNode(t)
	missing := "dsc-not-on-node:" + testenv.Random(6)
	b := newBuildPod(t, n, "harness-"+testenv.Random(8),
		podStep{Name: "sauce-connect", Image: pluginImage, Env: harnessEnv("9", "PLUGIN_IMAGE", missing)},
	)
	code, out := b.run("sauce-connect")
	if code == 0 || !strings.Contains(out, missing) || !strings.Contains(out, "pull") {
		t.Fatalf("start step exited with %d; want a failure naming %s and the pull settings:\n%s", code, missing, out)
	}
	t.Logf("exit %d:\n%s", code, out)
	b.assertNothingLeft(10 * time.Second)
}

// sidecarSteps are the README's in-pod pattern: the app under test on the
// build pod's 127.0.0.1 (a Background step), Sauce Connect as another
// Background step with its credentials from the pipeline's secrets, the
// plugin with action wait, and the tests, which have SC fetch the app's
// page from SC's own network, as a browser in Sauce's cloud would.
func sidecarSteps(build string, scEnv ...string) []podStep {
	sc := map[string]string{"SAUCE_REGION": "us-west", "SAUCE_TUNNEL_NAME": "in-pod-" + build, "SAUCE_API_ADDRESS": ":8032",
		"SAUCE_PROXY_LOCALHOST": "allow", "SAUCE_STANDIN_READY_DELAY": "300ms"}
	for i := 0; i+1 < len(scEnv); i += 2 {
		sc[scEnv[i]] = scEnv[i+1]
	}
	return []podStep{
		{Name: "app", Image: busybox, Command: []string{"/bin/sh", "-c",
			"mkdir -p /tmp/www && echo hello-from-the-build-pod > /tmp/www/index.html && exec httpd -f -p 127.0.0.1:3000 -h /tmp/www"}},
		{Name: "sauce-connect", Image: standin, Env: sc, SecretEnv: map[string]string{"SAUCE_USERNAME": "sauce_username", "SAUCE_ACCESS_KEY": "sauce_access_key"}},
		{Name: "wait", Image: pluginImage, Env: harnessEnv(build, "PLUGIN_ACTION", "wait", "PLUGIN_USERNAME", "", "PLUGIN_ACCESS_KEY", "", "PLUGIN_REGION", "")},
		{Name: "tests", Image: busybox, Command: []string{"/bin/sh", "-c",
			`set -a; . /harness/*.out; wget -q -O- "$SAUCE_CONNECT_API/standin/get?url=http://localhost:3000/"`}},
	}
}

// TestKubeletAppOnBuildPodLocalhost: the app listens on the build pod's
// 127.0.0.1, which no other pod can reach. With SC in the build pod and the
// plugin's action wait, the tunnel reaches it.
func TestKubeletAppOnBuildPodLocalhost(t *testing.T) {
	n := kubeletNode(t)
	b := newBuildPod(t, n, "harness-"+testenv.Random(8), sidecarSteps("10")...)
	b.start("app")
	b.start("sauce-connect")
	code, out := b.run("wait")
	if code != 0 || !strings.Contains(out, "tunnel in-pod-10 is up") {
		t.Fatalf("wait step exited with %d:\n%s", code, out)
	}
	t.Logf("wait step:\n%s", out)
	code, out = b.run("tests")
	if code != 0 || !strings.Contains(out, "hello-from-the-build-pod") {
		t.Fatalf("the tunnel did not reach the app on the build pod's localhost: exit %d\n%s", code, out)
	}
}

// TestKubeletSidecarFails: SC in the build pod refuses the credentials.
// The wait step does not sit out ready_timeout: it fails at once with exit
// 5 and SC's log lines, masked with the value it read from SC's Secret.
func TestKubeletSidecarFails(t *testing.T) {
	n := kubeletNode(t)
	b := newBuildPod(t, n, "harness-"+testenv.Random(8), sidecarSteps("11",
		"SAUCE_STANDIN_MODE", "bad-credentials", "SAUCE_STANDIN_LEAK_KEY", "true")...)
	b.start("sauce-connect")
	began := time.Now()
	code, out := b.run("wait")
	took := time.Since(began)
	if code != 5 || !strings.Contains(out, "401") || !strings.Contains(out, "access-key=***") {
		t.Fatalf("wait step exited with %d; want 5 with SC's masked 401 lines:\n%s", code, out)
	}
	if took > time.Minute {
		t.Errorf("the wait step took %s to notice that SC had exited", took)
	}
	t.Logf("failed in %s:\n%s", took.Round(time.Millisecond), out)
}

// TestKubeletLongBuildPodName: Harness and Drone name build pods after the
// pipeline, and the kubelet cuts a pod's hostname to 63 characters; the
// plugin finds its build pod all the same (by its own IP) and the tunnel
// pod is owned by it.
func TestKubeletLongBuildPodName(t *testing.T) {
	n := kubeletNode(t)
	name := "harnessci-browser-tests-on-kubernetes-with-a-long-name-" + testenv.Random(20)
	b := newBuildPod(t, n, name,
		podStep{Name: "sauce-connect", Image: pluginImage, Env: harnessEnv("12", "PLUGIN_ENV", `{"SAUCE_STANDIN_READY_DELAY":"300ms"}`)},
		podStep{Name: "hostname", Image: busybox, Command: []string{"/bin/sh", "-c", "echo hostname=$HOSTNAME"}},
	)
	if code, out := b.run("hostname"); code != 0 || !strings.Contains(out, "hostname="+name[:63]+"\n") {
		t.Fatalf("the kubelet did not cut the hostname to 63 characters as expected (exit %d): %s", code, out)
	}
	if code, out := b.run("sauce-connect"); code != 0 {
		t.Fatalf("start step in a build pod named %s (%d characters) exited with %d:\n%s", name, len(name), code, out)
	}
	pods := b.tunnelPods()
	if len(pods) != 1 || len(pods[0].Metadata.OwnerReferences) != 1 || pods[0].Metadata.OwnerReferences[0].Name != name {
		t.Fatalf("tunnel pods %+v: want one, owned by %s", pods, name)
	}
}

// TestKubeletStopCutsALongDrain: SC drains longer than stop_timeout, the
// tunnel pod's grace period. The kubelet kills it then; the stop step shows
// the drain it began, says it was cut short, and does not wait longer; and,
// since SC could not close its tunnel, deletes it through Sauce's REST API
// (the stand-in's) with the credentials of the tunnel's Secret, by the ID
// Sauce confirmed at the start, which the tunnel pod's annotation keeps.
func TestKubeletStopCutsALongDrain(t *testing.T) {
	n := kubeletNode(t)
	api, err := testenv.StartSauceAPIOn(testenv.NodeIP)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.Stop)
	b := newBuildPod(t, n, "harness-"+testenv.Random(8),
		podStep{Name: "sauce-connect", Image: pluginImage, Env: harnessEnv("13", "PLUGIN_STOP_TIMEOUT", "2s", "PLUGIN_REST_URL", api.URL,
			"PLUGIN_ENV", `{"SAUCE_STANDIN_READY_DELAY":"300ms","SAUCE_STANDIN_DRAIN":"30s","SAUCE_STANDIN_REST_URL":"`+api.URL+`"}`)},
		podStep{Name: "stop", Image: pluginImage, Env: harnessEnv("13", "PLUGIN_ACTION", "stop", "PLUGIN_STOP_TIMEOUT", "2s", "PLUGIN_ACCESS_KEY", "", "PLUGIN_REST_URL", api.URL)},
	)
	code, out := b.run("sauce-connect")
	if code != 0 || !strings.Contains(out, "tunnel browser_tests_k8s-13-browser_tests confirmed by Sauce Labs") {
		t.Fatalf("start step exited with %d, or Sauce did not confirm the tunnel:\n%s", code, out)
	}
	began := time.Now()
	code, out = b.run("stop")
	took := time.Since(began)
	if code != 0 || !strings.Contains(out, "draining for 30s") || strings.Contains(out, "tunnel closed, bye") ||
		!strings.Contains(out, "did not finish draining within stop_timeout (2s) and was killed") {
		t.Fatalf("stop step (exit %d) should show the drain begun, cut at stop_timeout:\n%s", code, out)
	}
	if took > 20*time.Second {
		t.Errorf("the stop step took %s with a stop_timeout of 2s", took)
	}
	t.Logf("stop step, %s:\n%s", took.Round(time.Millisecond), out)
	b.assertNothingLeft(10 * time.Second)
	assertDeletedBy(t, api, "browser_tests_k8s-13-browser_tests", "plugin")
	if !strings.Contains(out, "deleted at Sauce Labs") {
		t.Errorf("the stop step does not say it deleted the tunnel at Sauce Labs:\n%s", out)
	}
}

// assertDeletedBy checks who deleted a tunnel at the Sauce API stand-in.
func assertDeletedBy(t *testing.T, api *testenv.SauceAPI, tunnel string, want ...string) {
	t.Helper()
	by, err := api.DeletesOf(tunnel)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(by, want) {
		t.Errorf("tunnel %s was deleted at Sauce Labs by %v, want %v", tunnel, by, want)
	}
}

// TestKubeletPodSecurityRestricted: the namespace enforces the restricted
// Pod Security level. A plain tunnel pod is refused by admission, and the
// error says so (not RBAC) and names the setting; with
// kubernetes_run_as_user the pod is admitted and runs as that uid.
func TestKubeletPodSecurityRestricted(t *testing.T) {
	n := kubeletNode(t)
	b := newBuildPod(t, n, "harness-"+testenv.Random(8),
		podStep{Name: "plain", Image: pluginImage, Env: harnessEnv("14"), RunAsUser: 1000},
		podStep{Name: "restricted", Image: pluginImage, Env: harnessEnv("15", "PLUGIN_KUBERNETES_RUN_AS_USER", "65532",
			"PLUGIN_ENV", `{"SAUCE_STANDIN_READY_DELAY":"300ms"}`), RunAsUser: 1000},
	)
	// The build pod meets the level too (its steps run as uid 1000), as it
	// must in such a namespace.
	ctx := context.Background()
	path := "/api/v1/namespaces/" + b.NS
	var ns map[string]any
	if err := node.Admin.Do(ctx, http.MethodGet, path, nil, &ns); err != nil {
		t.Fatal(err)
	}
	ns["metadata"].(map[string]any)["labels"] = map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}
	if err := node.Admin.Do(ctx, http.MethodPut, path, ns, nil); err != nil {
		t.Fatal(err)
	}
	code, out := b.run("plain")
	if code != 1 || !strings.Contains(out, "refuses it") || !strings.Contains(out, "violates PodSecurity") ||
		!strings.Contains(out, "kubernetes_run_as_user") || strings.Contains(out, "grant the build pod's service account") {
		t.Fatalf("plain start step exited with %d; want 1, naming Pod Security and kubernetes_run_as_user, not RBAC:\n%s", code, out)
	}
	b.assertNothingLeft(10 * time.Second)
	if code, out = b.run("restricted"); code != 0 {
		t.Fatalf("start step with kubernetes_run_as_user exited with %d:\n%s", code, out)
	}
	pods := b.tunnelPods()
	if len(pods) != 1 || pods[0].Spec.SecurityContext == nil || *pods[0].Spec.SecurityContext.RunAsUser != 65532 {
		t.Fatalf("tunnel pods %+v: want one, running as 65532", pods)
	}
}

// TestKubeletNodeSelector: the real scheduler places the tunnel pod by
// kubernetes_node_selector. A selector no node matches fails the start at
// once with the scheduler's reason, and removes what it created; one the
// node matches runs the tunnel there.
func TestKubeletNodeSelector(t *testing.T) {
	n := kubeletNode(t)
	b := newBuildPod(t, n, "harness-"+testenv.Random(8),
		podStep{Name: "nowhere", Image: pluginImage, Env: harnessEnv("16", "PLUGIN_KUBERNETES_NODE_SELECTOR", `{"pool": "gpu"}`)},
		podStep{Name: "here", Image: pluginImage, Env: harnessEnv("17", "PLUGIN_KUBERNETES_NODE_SELECTOR", `{"kubernetes.io/hostname": "`+testenv.NodeName+`"}`,
			"PLUGIN_ENV", `{"SAUCE_STANDIN_READY_DELAY":"300ms"}`)},
	)
	began := time.Now()
	code, out := b.run("nowhere")
	if code != 1 || !strings.Contains(out, "cannot be scheduled") || !strings.Contains(out, "kubernetes_node_selector") {
		t.Fatalf("start step with an unmatched node selector exited with %d; want 1 naming the scheduling:\n%s", code, out)
	}
	t.Logf("failed in %s:\n%s", time.Since(began).Round(time.Millisecond), out)
	b.assertNothingLeft(10 * time.Second)
	if code, out = b.run("here"); code != 0 {
		t.Fatalf("start step with the node's own hostname as selector exited with %d:\n%s", code, out)
	}
	if pods := b.tunnelPods(); len(pods) != 1 || pods[0].Spec.NodeSelector["kubernetes.io/hostname"] != testenv.NodeName {
		t.Fatalf("tunnel pods %+v: want one, with the node selector", pods)
	}
}
