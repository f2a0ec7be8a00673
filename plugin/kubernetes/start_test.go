package kubernetes

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/drone-sauce-connect/drone-sauce-connect/internal/testenv"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/kubeapi"
)

// maskedOut is what the plugin prints, through a masking writer as main
// wires it; String flushes the writer first.
type maskedOut struct {
	*plugin.MaskWriter
	raw *testenv.SafeBuffer
}

func (m maskedOut) String() string {
	_ = m.Flush()
	return m.raw.String()
}

const buildPod = "build-pod-1"

// apiBackend is the Kubernetes backend on a, in build pod build-pod-1, for
// a tunnel named name; edit adjusts the settings.
func apiBackend(t *testing.T, a *apiServer, name string, edit func(*plugin.Settings)) (*backend, maskedOut) {
	t.Helper()
	a.mu.Lock()
	_, there := a.pods[buildPod]
	a.mu.Unlock()
	if !there {
		a.addPod(kubeapi.Pod{Metadata: kubeapi.ObjectMeta{Name: buildPod}, Status: kubeapi.PodStatus{Phase: "Running", PodIP: "10.244.0.2"}})
	}
	set := plugin.DefaultSettings()
	set.Username, set.AccessKey, set.TunnelName, set.Region = "u", "k-secret-value", name, "us-west"
	set.Backend, set.RESTConfirm, set.ReadyTimeout, set.StopTimeout = "kubernetes", "false", "10s", "1s"
	set.KubernetesPod = buildPod
	if edit != nil {
		edit(&set)
	}
	c, err := set.Config(plugin.Pipeline{}, "h", "r")
	if err != nil {
		t.Fatal(err)
	}
	masker := plugin.NewMasker(c.Secrets()...)
	raw := &testenv.SafeBuffer{}
	out := maskedOut{MaskWriter: masker.Writer(raw), raw: raw}
	log := logrus.New()
	log.SetOutput(out)
	log.SetFormatter(plugin.LogFormatter("text"))
	s := plugin.NewSession(c, plugin.Options{Out: out, Masker: masker, Log: log})
	b, err := New(s, a.client(), testNS)
	if err != nil {
		t.Fatal(err)
	}
	return b.(*backend), out
}

func start(b *backend) (*plugin.Tunnel, error) {
	ctx, cancel := plugin.ReadyBy(context.Background(), b.cfg)
	defer cancel()
	t, err := b.Start(ctx)
	return t, plugin.TimedOut(ctx, b.cfg, err)
}

func TestStartStatusStopOnTheAPIServer(t *testing.T) {
	a := newAPIServer(t)
	a.kubelet = a.readyKubelet
	b, out := apiBackend(t, a, "kube-one", nil)
	tun, err := start(b)
	if err != nil {
		t.Fatalf("start: %v\n%s", err, out)
	}
	if tun.Kind != "pod" || tun.Endpoints.Container != "http://10.244.0.9:8032" || tun.Reused {
		t.Errorf("tunnel %+v", tun)
	}
	if got := a.names("secrets"); len(got) != 1 {
		t.Errorf("secrets %v, want the tunnel's credentials", got)
	}
	a.mu.Lock()
	pod := *a.pods[tun.ID]
	a.mu.Unlock()
	if len(pod.Metadata.OwnerReferences) != 1 || pod.Metadata.OwnerReferences[0].Name != buildPod {
		t.Errorf("tunnel pod owners %+v, want the build pod", pod.Metadata.OwnerReferences)
	}
	if strings.Contains(out.String(), "k-secret-value") {
		t.Errorf("the access key was printed:\n%s", out)
	}
	if err := b.Status(context.Background()); err != nil {
		t.Errorf("status: %v", err)
	}
	if err := b.Stop(context.Background()); err != nil {
		t.Fatalf("stop: %v\n%s", err, out)
	}
	if p, s := a.names("pods"), a.names("secrets"); len(p) != 1 || len(s) != 0 {
		t.Errorf("after stop: pods %v, secrets %v; want the build pod alone", p, s)
	}
	testenv.CheckStopped(t, b, out)
}

func TestASecondStartReusesThePod(t *testing.T) {
	a := newAPIServer(t)
	a.kubelet = a.readyKubelet
	first, _ := apiBackend(t, a, "kube-reuse", nil)
	one, err := start(first)
	if err != nil {
		t.Fatal(err)
	}
	second, out := apiBackend(t, a, "kube-reuse", nil)
	two, err := start(second)
	if err != nil || !two.Reused || two.ID != one.ID || a.count("POST", "pods") != 1 {
		t.Errorf("second start %+v, %v, %d pods created:\n%s", two, err, a.count("POST", "pods"), out)
	}
}

// Two starts of one tunnel at once: the second finds the secret taken (409
// AlreadyExists) and waits for the first start's pod instead of failing or
// making another.
func TestTwoStartsOfOneTunnelShareThePod(t *testing.T) {
	a := newAPIServer(t)
	a.kubelet = a.readyKubelet
	gate := make(chan struct{})
	var arrived sync.WaitGroup
	arrived.Add(2)
	a.beforeSecret = func() { arrived.Done(); <-gate }
	tunnels, errs := make([]*plugin.Tunnel, 2), make([]error, 2)
	var wg sync.WaitGroup
	for i := range tunnels {
		b, _ := apiBackend(t, a, "kube-race", nil)
		wg.Add(1)
		go func() { defer wg.Done(); tunnels[i], errs[i] = start(b) }()
	}
	arrived.Wait()
	close(gate)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("start %d: %v", i, err)
		}
	}
	if tunnels[0].ID != tunnels[1].ID || tunnels[0].Reused == tunnels[1].Reused || a.count("POST", "pods") != 1 {
		t.Errorf("tunnels %+v, %+v, %d pods created: want one pod shared", tunnels[0], tunnels[1], a.count("POST", "pods"))
	}
}

func TestSCThatExitsIsExplainedAndCleanedUp(t *testing.T) {
	a := newAPIServer(t)
	a.kubelet = func(name string) {
		a.mu.Lock()
		a.logs[name] = "ERROR: the access key is not valid for user u (401 Unauthorized)\n"
		a.mu.Unlock()
		a.update(name, func(p *kubeapi.Pod) {
			p.Status.Phase = "Failed"
			p.Status.ContainerStatuses = []kubeapi.ContainerStatus{{Name: scContainer, State: kubeapi.ContainerState{Terminated: &kubeapi.StateTerminated{ExitCode: 1, Reason: "Error"}}}}
		})
	}
	b, out := apiBackend(t, a, "kube-exit", nil)
	_, err := start(b)
	var ex *plugin.ExitedError
	if !errors.As(err, &ex) {
		t.Fatalf("start: %v, want an ExitedError\n%s", err, out)
	}
	if !strings.Contains(out.String(), "not valid for user") {
		t.Errorf("SC's log not shown:\n%s", out)
	}
	if p, s := a.names("pods"), a.names("secrets"); len(p) != 1 || len(s) != 0 {
		t.Errorf("a failed start left pods %v, secrets %v", p, s)
	}
}

func TestUnschedulablePodIsOneClearError(t *testing.T) {
	a := newAPIServer(t)
	a.kubelet = func(name string) {
		a.update(name, func(p *kubeapi.Pod) {
			p.Status.Conditions = []kubeapi.PodCondition{{Type: "PodScheduled", Status: "False", Reason: "Unschedulable", Message: "0/3 nodes are available: 3 Insufficient cpu."}}
		})
	}
	b, out := apiBackend(t, a, "kube-unsched", nil)
	_, err := start(b)
	if err == nil || !strings.Contains(err.Error(), "cpu_request") {
		t.Fatalf("start: %v\n%s", err, out)
	}
	if p := a.names("pods"); len(p) != 1 {
		t.Errorf("pods left %v", p)
	}
}

func TestNeverReadyTimesOut(t *testing.T) {
	a := newAPIServer(t)
	b, out := apiBackend(t, a, "kube-never", func(s *plugin.Settings) { s.ReadyTimeout = "1s" })
	_, err := start(b)
	var to *plugin.TimeoutError
	if !errors.As(err, &to) {
		t.Fatalf("start: %v, want a TimeoutError\n%s", err, out)
	}
	if p, s := a.names("pods"), a.names("secrets"); len(p) != 1 || len(s) != 0 {
		t.Errorf("a timed-out start left pods %v, secrets %v", p, s)
	}
}

func TestRunModeRemovesThePod(t *testing.T) {
	a := newAPIServer(t)
	a.kubelet = a.readyKubelet
	b, out := apiBackend(t, a, "kube-run", nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	waitUntil(t, func() bool { return strings.Contains(out.String(), "tunnel kube-run is up") })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	if p := a.names("pods"); len(p) != 1 {
		t.Errorf("run left pods %v", p)
	}

	b, out = apiBackend(t, a, "kube-run-dies", nil)
	go func() { done <- b.Run(context.Background()) }()
	waitUntil(t, func() bool { return strings.Contains(out.String(), "is up") })
	for _, n := range a.names("pods") {
		if n != buildPod {
			a.update(n, func(p *kubeapi.Pod) {
				p.Status.ContainerStatuses[0].State = kubeapi.ContainerState{Terminated: &kubeapi.StateTerminated{ExitCode: 3}}
			})
		}
	}
	if err := <-done; err == nil || !strings.Contains(err.Error(), "exited with code 3") {
		t.Errorf("run, SC died: %v", err)
	}
}

// The Service, when asked for, is created with the pod and removed with it.
func TestServiceComesAndGoesWithThePod(t *testing.T) {
	a := newAPIServer(t)
	a.kubelet = a.readyKubelet
	b, out := apiBackend(t, a, "kube-svc", func(s *plugin.Settings) { s.KubernetesService = "true" })
	tun, err := start(b)
	if err != nil {
		t.Fatalf("start: %v\n%s", err, out)
	}
	if len(a.names("services")) != 1 || !strings.HasSuffix(tun.Endpoints.Container, "."+testNS+".svc:8032") {
		t.Errorf("services %v, endpoint %s", a.names("services"), tun.Endpoints.Container)
	}
	if err := b.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(a.names("services")) != 0 {
		t.Errorf("services left %v", a.names("services"))
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 1000; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not met within 10 s")
}

// SC that exits early for a reason a retry can fix gets a new pod, once
// the failed one is gone.
func TestARetryableExitStartsAFreshPod(t *testing.T) {
	a := newAPIServer(t)
	var mu sync.Mutex
	tries := 0
	a.kubelet = func(name string) {
		mu.Lock()
		tries++
		first := tries == 1
		mu.Unlock()
		if !first {
			a.readyKubelet(name)
			return
		}
		a.update(name, func(p *kubeapi.Pod) {
			p.Status.ContainerStatuses = []kubeapi.ContainerStatus{{Name: scContainer, State: kubeapi.ContainerState{Terminated: &kubeapi.StateTerminated{ExitCode: 1}}}}
		})
	}
	b, out := apiBackend(t, a, "kube-retry", nil)
	if _, err := start(b); err != nil {
		t.Fatalf("start: %v\n%s", err, out)
	}
	if n := a.count("POST", "pods"); n != 2 || !strings.Contains(out.String(), "retrying in") {
		t.Errorf("%d pods created, want 2 (one retry):\n%s", n, out)
	}
}

// A pod of the tunnel left by an earlier start (not ready, its start's
// ready_timeout over) is replaced.
func TestAStalePodIsReplaced(t *testing.T) {
	a := newAPIServer(t)
	a.kubelet = a.readyKubelet
	b, out := apiBackend(t, a, "kube-stale", nil)
	stale := kubeapi.Pod{Metadata: kubeapi.ObjectMeta{Name: "stale", Labels: map[string]string{}}, Status: kubeapi.PodStatus{Phase: "Pending"}}
	for _, term := range strings.Split(kubeSelector("kube-stale"), ",") {
		k, v, _ := strings.Cut(term, "=")
		stale.Metadata.Labels[k] = v
	}
	stale.Metadata.Labels[plugin.LabelReadyBy] = "1"
	a.addPod(stale)
	tun, err := start(b)
	if err != nil || tun.Reused {
		t.Fatalf("start: %+v, %v\n%s", tun, err, out)
	}
	for _, n := range a.names("pods") {
		if n == "stale" {
			t.Errorf("the stale pod was not replaced:\n%s", out)
		}
	}
}

func TestAdmissionRefusalsAreExplained(t *testing.T) {
	a := newAPIServer(t)
	a.refusePod = func() (int, string) {
		return 403, `pods "x" is forbidden: violates PodSecurity "restricted:latest": runAsNonRoot != true`
	}
	b, _ := apiBackend(t, a, "kube-psa", nil)
	if _, err := start(b); err == nil || !strings.Contains(err.Error(), "kubernetes_run_as_user") {
		t.Errorf("start refused by PodSecurity: %v", err)
	}
	a.refusePod = func() (int, string) {
		return 403, `pods is forbidden: User "system:serviceaccount:ci:default" cannot create resource "pods"`
	}
	b, _ = apiBackend(t, a, "kube-rbac", nil)
	if _, err := start(b); err == nil || !strings.Contains(err.Error(), "Role") {
		t.Errorf("start refused by RBAC: %v", err)
	}
	if s := a.names("secrets"); len(s) != 0 {
		t.Errorf("refused starts left secrets %v", s)
	}
}

// action wait in a build pod whose sidecar runs SC: ready when its API
// says so; when SC's container exits first, the wait fails at once with
// SC's log, its secret (read from the pipeline's Secret) masked.
func TestWaitForTheBuildPodsSidecar(t *testing.T) {
	a := newAPIServer(t)
	a.addSecret("sauce", map[string][]byte{"key": []byte("sidecar-secret-key")})
	sidecarPod := kubeapi.Pod{Metadata: kubeapi.ObjectMeta{Name: buildPod}, Status: kubeapi.PodStatus{Phase: "Running", PodIP: "10.244.0.2"},
		Spec: kubeapi.PodSpec{Containers: []kubeapi.Container{{Name: "step"}, {Name: "sc", Image: "saucelabs/sauce-connect:5",
			Env: []kubeapi.EnvVar{{Name: "SAUCE_ACCESS_KEY", ValueFrom: &kubeapi.EnvVarSource{SecretKeyRef: &kubeapi.SecretKeySelector{Name: "sauce", Key: "key"}}}}}}}}
	a.addPod(sidecarPod)
	readyz := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer readyz.Close()
	b, out := apiBackend(t, a, "kube-wait", func(s *plugin.Settings) { s.Action, s.APIURL, s.Username, s.AccessKey = "wait", readyz.URL, "", "" })
	if _, err := b.Wait(context.Background()); err != nil {
		t.Fatalf("wait for a ready sidecar: %v\n%s", err, out)
	}

	never := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
	defer never.Close()
	b, out = apiBackend(t, a, "kube-wait", func(s *plugin.Settings) { s.Action, s.APIURL, s.Username, s.AccessKey = "wait", never.URL, "", "" })
	a.mu.Lock()
	a.logs[buildPod] = "ERROR: bad access key sidecar-secret-key\n"
	a.mu.Unlock()
	go func() {
		time.Sleep(200 * time.Millisecond)
		a.update(buildPod, func(p *kubeapi.Pod) {
			p.Status.ContainerStatuses = []kubeapi.ContainerStatus{{Name: "sc", State: kubeapi.ContainerState{Terminated: &kubeapi.StateTerminated{ExitCode: 2}}}}
		})
	}()
	ctx, cancel := plugin.ReadyBy(context.Background(), b.cfg)
	defer cancel()
	_, err := b.Wait(ctx)
	var ex *plugin.ExitedError
	if !errors.As(err, &ex) {
		t.Fatalf("wait for a sidecar that exits: %v, want an ExitedError\n%s", err, out)
	}
	if strings.Contains(out.String(), "sidecar-secret-key") || !strings.Contains(out.String(), "bad access key") {
		t.Errorf("SC's log not shown, or its secret not masked:\n%s", out)
	}
}
