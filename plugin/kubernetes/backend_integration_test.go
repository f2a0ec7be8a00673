package kubernetes_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/drone-sauce-connect/drone-sauce-connect/internal/testenv"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/backend"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/kubeapi"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/kubernetes"
)

const accessKey = "AK-kube-5e1f-LEAKCHECK-33c9"

var (
	cp    *testenv.ControlPlane
	admin *kubeapi.Client
	users = []testenv.KubeUser{
		{Name: "admin", Token: "admin-" + testenv.Random(16), Groups: []string{"system:masters"}},
		{Name: "builder", Token: "builder-" + testenv.Random(16)},
		{Name: "builder-without-secrets", Token: "nosecrets-" + testenv.Random(16)},
	}
)

func TestMain(m *testing.M) {
	os.Exit(func() int {
		flag.Parse()
		if testing.Short() {
			return m.Run()
		}
		var err error
		began := time.Now()
		cp, err = testenv.StartControlPlane(users)
		if err != nil {
			return testenv.Unavailable("test control plane", err)
		}
		defer cp.Stop()
		fmt.Printf("test control plane up in %s\n", time.Since(began).Round(time.Millisecond))
		admin = client(users[0])
		return m.Run()
	}())
}

func client(u testenv.KubeUser) *kubeapi.Client {
	c, err := kubeapi.New(kubeapi.Config{Host: cp.URL, Token: u.Token, CA: cp.CA})
	if err != nil {
		panic(err)
	}
	return c
}

// cluster is one test's namespace, with the build pod that owns the tunnel
// and the documented Role bound to the builder user.
type cluster struct {
	t        *testing.T
	ns       string
	buildPod kubeapi.Pod
}

func newCluster(t *testing.T) *cluster {
	if testing.Short() {
		t.Skip("needs the test control plane")
	}
	t.Parallel()
	ctx := context.Background()
	c := &cluster{t: t, ns: "t-" + testenv.Random(10)}
	must(t, admin.Do(ctx, http.MethodPost, "/api/v1/namespaces", map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": c.ns}}, nil))
	t.Cleanup(func() { _ = admin.Do(context.Background(), http.MethodDelete, "/api/v1/namespaces/"+c.ns, nil, nil) })
	for _, role := range []string{"documented", "without-secrets"} {
		must(t, admin.Do(ctx, http.MethodPost, "/apis/rbac.authorization.k8s.io/v1/namespaces/"+c.ns+"/roles", loadRole(t, role), nil))
	}
	for _, u := range users[1:] {
		roleName := "drone-sauce-connect"
		if u.Name == "builder-without-secrets" {
			roleName = "without-secrets"
		}
		binding := map[string]any{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
			"metadata": map[string]any{"name": u.Name},
			"subjects": []any{map[string]any{"kind": "User", "name": u.Name, "apiGroup": "rbac.authorization.k8s.io"}},
			"roleRef":  map[string]any{"kind": "Role", "name": roleName, "apiGroup": "rbac.authorization.k8s.io"}}
		must(t, admin.Do(ctx, http.MethodPost, "/apis/rbac.authorization.k8s.io/v1/namespaces/"+c.ns+"/rolebindings", binding, nil))
		must(t, testenv.AwaitAllowed(admin, c.ns, u.Name, "get", "pods"))
	}
	// The default service account must exist before pods can be created.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if admin.Do(ctx, http.MethodGet, "/api/v1/namespaces/"+c.ns+"/serviceaccounts/default", nil, nil) == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no default service account")
		}
	}
	no := false
	p, err := admin.CreatePod(ctx, c.ns, kubeapi.Pod{APIVersion: "v1", Kind: "Pod", Metadata: kubeapi.ObjectMeta{Name: "build-pod"},
		Spec: kubeapi.PodSpec{AutomountServiceAccountToken: &no, Containers: []kubeapi.Container{{Name: "step", Image: "harness/ci-addon:1"}}}})
	must(t, err)
	c.buildPod = p
	return c
}

// loadRole reads the Role from testdata/kubernetes/role.yaml (the documented
// one, or, for "without-secrets", that Role less its secrets rule).
func loadRole(t *testing.T, which string) map[string]any {
	docs, err := testenv.RoleManifests()
	must(t, err)
	for _, doc := range docs {
		if doc["kind"] != "Role" {
			continue
		}
		if which == "without-secrets" {
			doc["metadata"] = map[string]any{"name": which}
			var kept []any
			for _, r := range doc["rules"].([]any) {
				if fmt.Sprint(r.(map[string]any)["resources"]) != "[secrets]" {
					kept = append(kept, r)
				}
			}
			doc["rules"] = kept
		}
		return doc
	}
	t.Fatal("no Role in role.yaml")
	return nil
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// kubelet plays the node: when the tunnel pod appears it writes, after
// delay, the status a kubelet would.
func (c *cluster) kubelet(tunnel string, delay time.Duration, status func(p *kubeapi.Pod)) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for ctx.Err() == nil {
			pods, err := admin.ListPods(ctx, c.ns, plugin.LabelTunnel+"="+tunnel)
			if err == nil && len(pods) == 1 {
				time.Sleep(delay)
				p, err := admin.GetPod(ctx, c.ns, pods[0].Metadata.Name)
				if err != nil {
					return
				}
				status(&p)
				if err := admin.Do(ctx, http.MethodPut, "/api/v1/namespaces/"+c.ns+"/pods/"+p.Metadata.Name+"/status", p, nil); err != nil {
					c.t.Errorf("fake kubelet: %v", err)
				}
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
}

func ready(p *kubeapi.Pod) {
	p.Status = kubeapi.PodStatus{Phase: "Running", PodIP: "10.244.0.7", Conditions: []kubeapi.PodCondition{
		{Type: "PodScheduled", Status: "True"}, {Type: "Ready", Status: "True"}},
		ContainerStatuses: []kubeapi.ContainerStatus{{Name: "sauce-connect", Ready: true, Image: p.Spec.Containers[0].Image, ImageID: "x",
			State: kubeapi.ContainerState{Running: &kubeapi.StateRunning{StartedAt: time.Now().UTC().Format(time.RFC3339)}}}}}
}

// exec runs the plugin's Kubernetes backend as user u and captures what it
// prints through the masking writer main uses.
type result struct {
	err    error
	out    string
	output map[string]string
}

var mu sync.Mutex

func (c *cluster) exec(u testenv.KubeUser, tunnel, action string, set func(*plugin.Settings)) result {
	c.t.Helper()
	s := plugin.DefaultSettings()
	s.Username, s.AccessKey, s.TunnelName, s.Action, s.Region = "alice", plugin.Secret(accessKey), tunnel, action, "us-west"
	s.KubernetesPod, s.Image, s.StopTimeout = "build-pod", "saucelabs/sauce-connect:5", "5s"
	s.RESTURL = "http://127.0.0.1:9" // never Sauce Labs' own REST API
	if set != nil {
		set(&s)
	}
	outFile := filepath.Join(c.t.TempDir(), "drone-output")
	cfg, err := s.Config(plugin.Pipeline{Drone: "true", HarnessStageID: "e2e", DroneOutput: outFile}, "h", "r")
	must(c.t, err)
	var buf bytes.Buffer
	m := plugin.NewMasker(accessKey)
	w := m.Writer(&buf)
	log := logrus.New()
	log.SetOutput(w)
	log.SetFormatter(plugin.LogFormatter("text"))
	err = perform(cfg, client(u), c.ns, plugin.Options{Out: w, Masker: m, Log: log})
	_ = w.Flush()
	r := result{err: err, out: buf.String(), output: map[string]string{}}
	if b, rerr := os.ReadFile(outFile); rerr == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				r.output[k] = v
			}
		}
	}
	if strings.Contains(r.out, accessKey) {
		c.t.Errorf("the access key appears in the output:\n%s", r.out)
	}
	return r
}

// objects lists what the test namespace holds for the tunnel, as JSON.
func (c *cluster) objects(tunnel string) (pods []kubeapi.Pod, secrets int, raw string) {
	ctx := context.Background()
	pods, err := admin.ListPods(ctx, c.ns, plugin.LabelTunnel+"="+tunnel)
	must(c.t, err)
	var sl struct {
		Items []json.RawMessage `json:"items"`
	}
	must(c.t, admin.Do(ctx, http.MethodGet, "/api/v1/namespaces/"+c.ns+"/secrets?labelSelector="+plugin.LabelTunnel+"%3D"+tunnel, nil, &sl))
	b, _ := json.Marshal(pods)
	return pods, len(sl.Items), string(b)
}

func TestStartReadyOutputsStop(t *testing.T) {
	for _, svc := range []bool{false, true} {
		t.Run(fmt.Sprintf("service=%t", svc), func(t *testing.T) {
			c := newCluster(t)
			tunnel := "kube-" + testenv.Random(6)
			const kubeletDelay = 300 * time.Millisecond
			c.kubelet(tunnel, kubeletDelay, ready)
			began := time.Now()
			r := c.exec(users[1], tunnel, "start", func(s *plugin.Settings) { s.KubernetesService = fmt.Sprint(svc) })
			if r.err != nil {
				t.Fatalf("%v\n%s", r.err, r.out)
			}
			t.Logf("time to ready on the test control plane: %s (of which the fake kubelet's delay %s)", time.Since(began).Round(time.Millisecond), kubeletDelay)
			pods, secrets, raw := c.objects(tunnel)
			if len(pods) != 1 || secrets != 1 {
				t.Fatalf("%d pods, %d secrets for the tunnel", len(pods), secrets)
			}
			p := pods[0]
			wantAPI := "http://10.244.0.7:8032"
			if svc {
				wantAPI = "http://" + p.Metadata.Name + "." + c.ns + ".svc:8032"
			}
			if r.output["SAUCE_CONNECT_API"] != wantAPI || r.output["SAUCE_TUNNEL_NAME"] != tunnel || r.output["SAUCE_CONNECT_CONTAINER"] != p.Metadata.Name {
				t.Errorf("outputs %v, want API %s", r.output, wantAPI)
			}
			if strings.Contains(raw, accessKey) {
				t.Error("the access key is in the pod spec")
			}
			var byRef bool
			for _, e := range p.Spec.Containers[0].Env {
				if e.Name == "SAUCE_ACCESS_KEY" && e.Value == "" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					byRef = true
				}
			}
			if !byRef {
				t.Error("the pod does not take the access key from the secret")
			}
			if o := p.Metadata.OwnerReferences; len(o) != 1 || o[0].UID != c.buildPod.Metadata.UID {
				t.Errorf("the pod is not owned by the build pod: %+v", o)
			}
			var events struct{ Items []json.RawMessage }
			must(t, admin.Do(context.Background(), http.MethodGet, "/api/v1/namespaces/"+c.ns+"/events", nil, &events))
			if b, _ := json.Marshal(events); strings.Contains(string(b), accessKey) {
				t.Error("the access key is in an event")
			}
			if again := c.exec(users[1], tunnel, "start", nil); again.err != nil || !strings.Contains(again.out, "reusing it") {
				t.Errorf("a second start did not reuse the ready tunnel: %v\n%s", again.err, again.out)
			}
			if st := c.exec(users[1], tunnel, "status", nil); st.err != nil || !strings.Contains(st.out, "ready:     true") {
				t.Errorf("status: %v\n%s", st.err, st.out)
			}
			if stop := c.exec(users[1], tunnel, "stop", nil); stop.err != nil {
				t.Fatalf("stop: %v\n%s", stop.err, stop.out)
			}
			if pods, secrets, _ := c.objects(tunnel); len(pods) != 0 || secrets != 0 {
				t.Errorf("after stop: %d pods, %d secrets", len(pods), secrets)
			}
			if stop := c.exec(users[1], tunnel, "stop", nil); stop.err != nil || !strings.Contains(stop.out, "nothing to stop") {
				t.Errorf("a second stop: %v\n%s", stop.err, stop.out)
			}
		})
	}
}

func TestBadCredentials(t *testing.T) {
	c := newCluster(t)
	tunnel := "kube-" + testenv.Random(6)
	c.kubelet(tunnel, 200*time.Millisecond, func(p *kubeapi.Pod) {
		p.Status = kubeapi.PodStatus{Phase: "Failed", PodIP: "10.244.0.8", ContainerStatuses: []kubeapi.ContainerStatus{{
			Name: "sauce-connect", Image: p.Spec.Containers[0].Image, ImageID: "x",
			State: kubeapi.ContainerState{Terminated: &kubeapi.StateTerminated{ExitCode: 1, Reason: "Error",
				Message: "2026/11/28 16:00:00.401000 [control] [DEBUG] access-key=" + accessKey +
					"\n2026/11/28 16:00:00.5 [control] [ERROR] fatal error exiting: create tunnel: 401 Unauthorized"}}}}}
	})
	r := c.exec(users[1], tunnel, "start", nil)
	var creds *plugin.CredentialsError
	if !errors.As(r.err, &creds) || plugin.ExitCode(r.err) != plugin.ExitCredentials {
		t.Fatalf("got %v\n%s", r.err, r.out)
	}
	if !strings.Contains(r.out, "access-key=***") || !strings.Contains(r.out, "401 Unauthorized") {
		t.Errorf("SC's last lines are missing or unmasked:\n%s", r.out)
	}
	if pods, secrets, _ := c.objects(tunnel); len(pods) != 0 || secrets != 0 {
		t.Errorf("left behind: %d pods, %d secrets", len(pods), secrets)
	}
}

func TestNeverReady(t *testing.T) {
	c := newCluster(t)
	tunnel := "kube-" + testenv.Random(6)
	c.kubelet(tunnel, 100*time.Millisecond, func(p *kubeapi.Pod) {
		ready(p)
		p.Status.Conditions[1].Status, p.Status.Conditions[1].Reason = "False", "ContainersNotReady"
		p.Status.ContainerStatuses[0].Ready = false
	})
	r := c.exec(users[1], tunnel, "start", func(s *plugin.Settings) { s.ReadyTimeout = "2s" })
	var to *plugin.TimeoutError
	if !errors.As(r.err, &to) || !strings.Contains(r.err.Error(), "Ready False ContainersNotReady") {
		t.Fatalf("got %v\n%s", r.err, r.out)
	}
	if pods, secrets, _ := c.objects(tunnel); len(pods) != 0 || secrets != 0 {
		t.Errorf("left behind: %d pods, %d secrets", len(pods), secrets)
	}
}

// TestReadyByProbeBeforeTheKubelet: SC's /readyz answers 200 at the pod IP
// while the kubelet has not (yet) marked the pod Ready. Handing on the pod
// IP, the plugin's own probe ends the wait; handing on the Service, which
// routes only to Ready pods, it waits for the condition (here: in vain).
func TestReadyByProbeBeforeTheKubelet(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
		}
	}), ReadHeaderTimeout: time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	notReady := func(p *kubeapi.Pod) {
		ready(p)
		p.Status.PodIP = "127.0.0.1"
		p.Status.Conditions[1].Status, p.Status.Conditions[1].Reason = "False", "ContainersNotReady"
		p.Status.ContainerStatuses[0].Ready = false
	}
	for _, svc := range []bool{false, true} {
		t.Run(fmt.Sprintf("service=%t", svc), func(t *testing.T) {
			c := newCluster(t)
			tunnel := "kube-" + testenv.Random(6)
			c.kubelet(tunnel, 100*time.Millisecond, notReady)
			r := c.exec(users[1], tunnel, "start", func(s *plugin.Settings) {
				s.ReadyTimeout, s.APIPort, s.KubernetesService = "3s", strconv.Itoa(port), fmt.Sprint(svc)
			})
			var to *plugin.TimeoutError
			switch {
			case !svc && r.err != nil:
				t.Fatalf("/readyz answered 200 at the pod IP, yet: %v\n%s", r.err, r.out)
			case !svc && r.output["SAUCE_CONNECT_API"] != "http://127.0.0.1:"+strconv.Itoa(port):
				t.Errorf("outputs %v", r.output)
			case svc && !errors.As(r.err, &to):
				t.Fatalf("with the Service the Ready condition must decide; got %v\n%s", r.err, r.out)
			}
			_ = c.exec(users[1], tunnel, "stop", nil)
		})
	}
}

// TestBuildPodGoneGarbageCollects deletes the build pod, as the CI does
// when the stage ends however it ends: the tunnel pod and its secret must
// be collected by Kubernetes' garbage collector.
func TestBuildPodGoneGarbageCollects(t *testing.T) {
	c := newCluster(t)
	tunnel := "kube-" + testenv.Random(6)
	c.kubelet(tunnel, 0, ready)
	if r := c.exec(users[1], tunnel, "start", nil); r.err != nil {
		t.Fatalf("%v\n%s", r.err, r.out)
	}
	began := time.Now()
	must(t, admin.DeletePod(context.Background(), c.ns, "build-pod", 0))
	for {
		pods, secrets, _ := c.objects(tunnel)
		if len(pods) == 0 && secrets == 0 {
			t.Logf("build pod deleted → tunnel pod and secret collected in %s", time.Since(began).Round(time.Millisecond))
			return
		}
		if time.Since(began) > 30*time.Second {
			t.Fatalf("30 s after the build pod went: %d pods, %d secrets", len(pods), secrets)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRoleMissingAVerb(t *testing.T) {
	c := newCluster(t)
	tunnel := "kube-" + testenv.Random(6)
	r := c.exec(users[2], tunnel, "start", nil)
	if r.err == nil || !strings.Contains(r.err.Error(), `cannot create resource "secrets"`) || !strings.Contains(r.err.Error(), "grant the build pod's service account the Role") {
		t.Fatalf("got %v", r.err)
	}
	if pods, _, _ := c.objects(tunnel); len(pods) != 0 {
		t.Errorf("a pod was created")
	}
}

// TestBackendAuto checks that backend auto takes Docker when an engine
// answers and Kubernetes when none does and the plugin runs in a pod.
func TestBackendAuto(t *testing.T) {
	c := newCluster(t)
	tunnel := "kube-" + testenv.Random(6)
	s := plugin.DefaultSettings()
	s.Username, s.AccessKey, s.TunnelName, s.Action, s.KubernetesPod = "alice", "k", tunnel, "stop", "build-pod"
	cfg, err := s.Config(plugin.Pipeline{}, "h", "r")
	must(t, err)
	var out bytes.Buffer
	log := logrus.New()
	log.SetOutput(&out)
	noEngine := func(context.Context, *plugin.Session) (plugin.Backend, func(), error) {
		return nil, nil, fmt.Errorf("%w at unix:///var/run/docker.sock: no such file", engine.ErrUnreachable)
	}
	inPod := func(s *plugin.Session) (plugin.Backend, error) { return kubernetes.New(s, client(users[1]), c.ns) }
	if err := backend.Act(context.Background(), cfg, backend.Connectors{Docker: noEngine, Kubernetes: inPod}, plugin.Options{Out: &out, Log: log}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "running the tunnel as a Kubernetes pod") {
		t.Errorf("auto did not pick Kubernetes without an engine:\n%s", out.String())
	}
	notInPod := func(*plugin.Session) (plugin.Backend, error) { return nil, kubeapi.ErrNotInCluster }
	err = backend.Act(context.Background(), cfg, backend.Connectors{Docker: noEngine, Kubernetes: notInPod}, plugin.Options{Out: io.Discard, Log: log})
	if err == nil || !strings.Contains(err.Error(), "mount the Docker socket into the step: Drone: a host volume /var/run/docker.sock") || !strings.Contains(err.Error(), "or run the step in a Kubernetes pod with a service account (backend kubernetes)") {
		t.Errorf("neither world: %v", err)
	}
	out.Reset()
	dockerUsed := false
	engineUp := func(ctx context.Context, s *plugin.Session) (plugin.Backend, func(), error) {
		dockerUsed = true
		return backend.Real.Docker(ctx, s)
	}
	failKube := func(*plugin.Session) (plugin.Backend, error) {
		t.Error("auto asked Kubernetes although an engine answered")
		return nil, kubeapi.ErrNotInCluster
	}
	err = backend.Act(context.Background(), cfg, backend.Connectors{Docker: engineUp, Kubernetes: failKube}, plugin.Options{Out: &out, Log: log})
	if errors.Is(err, engine.ErrUnreachable) {
		t.Skip("no Docker engine here for the Docker half")
	}
	if err != nil || !dockerUsed || !strings.Contains(out.String(), "nothing to stop") {
		t.Errorf("with an engine: %v, docker used %t\n%s", err, dockerUsed, out.String())
	}
}

// perform runs the action with the Kubernetes backend, as backend.Act does
// once it has chosen it.
func perform(cfg plugin.Config, kc *kubeapi.Client, ns string, o plugin.Options) error {
	b, err := kubernetes.New(plugin.NewSession(cfg, o), kc, ns)
	if err != nil {
		return err
	}
	return plugin.Perform(context.Background(), cfg, b)
}

// TestTwoStartsOfOneTunnelAtOnce: two starts of one tunnel at once (two
// parallel steps with one tunnel_name) on the real API server: neither
// deletes the other's pod or secret, neither fails on the other's names;
// one pod runs, and both hand over the tunnel.
func TestTwoStartsOfOneTunnelAtOnce(t *testing.T) {
	c := newCluster(t)
	tunnel := "race-" + testenv.Random(6)
	c.kubelet(tunnel, 500*time.Millisecond, ready)
	results := make(chan result, 2)
	for range 2 {
		go func() { results <- c.exec(users[1], tunnel, "start", nil) }()
	}
	reused := 0
	for range 2 {
		r := <-results
		if r.err != nil {
			t.Fatalf("a start failed: %v\n%s", r.err, r.out)
		}
		if strings.Contains(r.out, "reusing it") {
			reused++
		}
	}
	pods, secrets, raw := c.objects(tunnel)
	if len(pods) != 1 || secrets != 1 || reused != 1 {
		t.Fatalf("%d pods, %d secrets, %d starts reused the other's tunnel: %s", len(pods), secrets, reused, raw)
	}
	if r := c.exec(users[1], tunnel, "stop", nil); r.err != nil {
		t.Fatal(r.err)
	}
}

// TestNamesThatDifferOnlyInCase: tunnel names that differ only in case or
// punctuation are two tunnels, and get two pods; the pod lives no longer
// than max_lifetime (activeDeadlineSeconds).
func TestNamesThatDifferOnlyInCase(t *testing.T) {
	c := newCluster(t)
	suffix := testenv.Random(6)
	for _, tunnel := range []string{"Web_E2E-" + suffix, "web-e2e-" + suffix} {
		c.kubelet(tunnel, 100*time.Millisecond, ready)
		r := c.exec(users[1], tunnel, "start", func(s *plugin.Settings) { s.MaxLifetime = "1h" })
		if r.err != nil {
			t.Fatalf("%s: %v\n%s", tunnel, r.err, r.out)
		}
		pods, _, _ := c.objects(tunnel)
		if len(pods) != 1 || pods[0].Spec.ActiveDeadlineSeconds == nil || *pods[0].Spec.ActiveDeadlineSeconds != 3600 {
			t.Fatalf("%s: pods %+v", tunnel, pods)
		}
	}
	all, err := admin.ListPods(context.Background(), c.ns, plugin.LabelRole+"="+plugin.RoleTunnel)
	must(t, err)
	if len(all) != 2 || all[0].Metadata.Name == all[1].Metadata.Name {
		t.Fatalf("%d tunnel pods for two tunnels", len(all))
	}
}
