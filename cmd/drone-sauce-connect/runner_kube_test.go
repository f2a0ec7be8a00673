package main_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/drone-sauce-connect/drone-sauce-connect/internal/testenv"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/kubeapi"
)

// TestDroneRunnerKube runs the README's Drone Kubernetes pipeline
// (pipelines/drone-kubernetes.yml) with drone-runner-kube's own `exec`
// (v1.0.0-rc.5, client-go 0.21) against the real-kubelet node, the runner
// authenticated as the cluster's admin and the build pod running as
// ci-builds with the README's Role. What the runner does, read in its
// source (engine/engine_impl.go): Setup creates a Secret with the
// pipeline's secrets and the build pod, every step a container running
// drone/placeholder:1 (the node's placeholder under that name, since
// nothing can be pulled); each step swaps its image in; Destroy waits 5 s,
// deletes the Secret and the pod (default grace period), and returns once
// the pod is gone; on cancel it does the same. The pipeline is the
// README's but for the images (the test's) and two things the node lacks:
// it has no cluster DNS, so the plugin runs without kubernetes_service and
// hands the tests step the tunnel pod's IP in a file of the shared
// workspace (DRONE_OUTPUT), which the step reads; and no npm. The Service
// under its DNS name is covered by TestKubeletPipeline.
func TestDroneRunnerKube(t *testing.T) {
	n := kubeletNode(t)
	bin := testenv.Runner(t, "drone-runner-kube")
	for _, tc := range []struct {
		name     string
		stopStep bool
		cancel   bool // SIGINT once the tests step has reached the tunnel
	}{{"with the stop step", true, false}, {"without a stop step", false, false}, {"cancelled mid-pipeline", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ns := "t-" + testenv.Random(10)
			t.Cleanup(func() { _ = n.DeleteNamespace(ns) })
			if err := n.CreateBuildNamespace(ns); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			file := filepath.Join(dir, ".drone.yml")
			if err := os.WriteFile(file, kubePipeline(t, tc.stopStep, tc.cancel), 0o600); err != nil {
				t.Fatal(err)
			}
			build := fmt.Sprint(time.Now().UnixNano() % 1e6)
			cmd := exec.Command(bin, "exec", "--kubeconfig", n.AdminKubeconfig(), "--namespace", ns,
				"--repo-name", "shop", "--repo-namespace", "acme", "--repo-slug", "acme/shop", "--build-number", build, "--stage-name", "browser-tests",
				"--secrets", "sauce_username=alice", "--secrets", "sauce_access_key="+accessKey, file)
			var out testenv.SafeBuffer
			cmd.Dir, cmd.Stdout, cmd.Stderr = dir, &out, &out
			began := time.Now()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			if tc.cancel {
				awaitText(t, &out, "reached http://", 2*time.Minute)
				_ = cmd.Process.Signal(syscall.SIGINT)
			}
			err := cmd.Wait()
			t.Logf("drone-runner-kube exec: %s\n%s", time.Since(began).Round(time.Millisecond), out.String())
			noKey(t, "drone-runner-kube's output", out.String())
			if err != nil && !tc.cancel {
				t.Fatalf("drone-runner-kube exec: %v", err)
			}
			if !strings.Contains(out.String(), "reached http://") {
				t.Errorf("the tests step did not reach the tunnel")
			}
			if tc.cancel && strings.Contains(out.String(), "[stop-sauce-connect") {
				t.Errorf("the runner ran the stop step after the cancel; it skips every step to come")
			}
			// The runner returns once the build pod is gone; the tunnel pod,
			// owned by it, goes through the garbage collector (or the stop step).
			gone := time.Now()
			waitNoTunnelPods(t, ns, 30*time.Second)
			t.Logf("tunnel pod, Secret and Service gone %s after the runner returned", time.Since(gone).Round(time.Millisecond))
		})
	}
}

// awaitText waits until out holds text.
func awaitText(t *testing.T, out *testenv.SafeBuffer, text string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !strings.Contains(out.String(), text) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q within %s:\n%s", text, limit, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kubePipeline is the README's Drone Kubernetes pipeline made runnable here.
func kubePipeline(t *testing.T, stopStep, hold bool) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(testenv.Root(), "testdata", "pipelines", "drone-kubernetes.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(strings.ReplaceAll(string(raw), readmeImage, pluginImage)), &doc); err != nil {
		t.Fatal(err)
	}
	doc["clone"] = map[string]any{"disable": true}
	var steps []any
	for _, s := range doc["steps"].([]any) {
		step := s.(map[string]any)
		step["pull"] = "if-not-exists"
		switch step["name"] {
		case "sauce-connect":
			settings := step["settings"].(map[string]any)
			settings["image"], settings["pull"] = standin, "never"
			settings["env"] = map[string]any{"SAUCE_STANDIN_READY_DELAY": "300ms"}
			settings["rest_url"] = offlineREST
			delete(settings, "kubernetes_service")
			step["environment"] = map[string]any{"DRONE_OUTPUT": "/drone/src/sauce-connect.env"}
		case "tests":
			step["image"] = busybox
			cmds := []any{". /drone/src/sauce-connect.env", "wget -q -O- $${SAUCE_CONNECT_API}/readyz", "echo; echo reached $${SAUCE_CONNECT_API}"}
			if hold {
				cmds = append(cmds, "sleep 300")
			}
			step["commands"] = cmds
		case "stop-sauce-connect":
			if !stopStep {
				continue
			}
		}
		steps = append(steps, step)
	}
	doc["steps"] = steps
	b, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitNoTunnelPods waits until no pod, Secret or Service of a tunnel is
// left in ns.
func waitNoTunnelPods(t *testing.T, ns string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		var left []string
		for _, kind := range []string{"pods", "secrets", "services"} {
			var list struct {
				Items []kubeapi.Pod `json:"items"`
			}
			if err := node.Admin.Do(context.Background(), http.MethodGet, "/api/v1/namespaces/"+ns+"/"+kind+"?labelSelector=io.drone-sauce-connect.managed%3Dtrue", nil, &list); err != nil {
				t.Fatal(err)
			}
			for _, it := range list.Items {
				left = append(left, kind+"/"+it.Metadata.Name)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("left behind after %s: %v", limit, left)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
