package kubernetes

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/kubeapi"
)

// apiServer is a Kubernetes API server in memory for unit tests: pods,
// secrets and services of one namespace, created (409 AlreadyExists on a
// taken name), read, listed by label, annotated, deleted (with a UID
// precondition, 409 when it does not hold) and watched, and a pod's log.
// It answers as the API server does (Status objects for errors); the test
// plays the kubelet through kubelet, which sees every pod created. The
// integration tests run the same backend against a real control plane and
// kubelet.
type apiServer struct {
	t   *testing.T
	srv *httptest.Server
	mu  sync.Mutex
	rv  int
	// kubelet, when set, runs for each pod created, in its own goroutine.
	kubelet func(name string)
	// refusePod, when set, answers a pod's creation with its status and
	// message (admission's refusals).
	refusePod func() (int, string)
	// beforeSecret, when set, runs before each secret is created.
	beforeSecret func()
	pods         map[string]*kubeapi.Pod
	logs         map[string]string
	secrets      map[string]*kubeapi.Secret
	services     map[string]*kubeapi.Service
	watchers     map[string][]chan kubeapi.PodEvent
	// gone are deleted pods as last seen: a watch from before their
	// deletion hears of it, as the API server's event history tells.
	gone  map[string]kubeapi.Pod
	calls map[string]int
}

const testNS = "ci"

func newAPIServer(t *testing.T) *apiServer {
	a := &apiServer{t: t, pods: map[string]*kubeapi.Pod{}, logs: map[string]string{}, secrets: map[string]*kubeapi.Secret{},
		services: map[string]*kubeapi.Service{}, watchers: map[string][]chan kubeapi.PodEvent{}, gone: map[string]kubeapi.Pod{}, calls: map[string]int{}}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.srv.Close)
	return a
}

// client is a kube client of the server.
func (a *apiServer) client() *kubeapi.Client {
	kc, err := kubeapi.New(kubeapi.Config{Host: a.srv.URL, Token: "t"})
	if err != nil {
		a.t.Fatal(err)
	}
	return kc
}

func (a *apiServer) status(w http.ResponseWriter, code int, reason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason, "message": msg})
}

func (a *apiServer) reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// nextMeta gives a new object its UID and resource version; the caller
// holds mu.
func (a *apiServer) nextMeta(m *kubeapi.ObjectMeta) {
	a.rv++
	m.ResourceVersion = strconv.Itoa(a.rv)
	if m.UID == "" {
		m.UID = fmt.Sprintf("uid-%d", a.rv)
	}
	m.Namespace = testNS
}

func (a *apiServer) serve(w http.ResponseWriter, r *http.Request) {
	prefix := "/api/v1/namespaces/" + testNS + "/"
	rest, ok := strings.CutPrefix(r.URL.Path, prefix)
	if !ok {
		a.status(w, http.StatusNotFound, "NotFound", "no such path "+r.URL.Path)
		return
	}
	parts := strings.Split(rest, "/")
	a.mu.Lock()
	a.calls[r.Method+" "+parts[0]]++
	a.mu.Unlock()
	switch parts[0] {
	case "pods":
		a.servePods(w, r, parts[1:])
	case "secrets", "services":
		a.serveSimple(w, r, parts[0], parts[1:])
	default:
		a.status(w, http.StatusNotFound, "NotFound", "no such resource "+parts[0])
	}
}

func (a *apiServer) servePods(w http.ResponseWriter, r *http.Request, parts []string) {
	switch {
	case len(parts) == 0 && r.Method == http.MethodPost:
		var p kubeapi.Pod
		_ = json.NewDecoder(r.Body).Decode(&p)
		if a.refusePod != nil {
			code, msg := a.refusePod()
			a.status(w, code, "Forbidden", msg)
			return
		}
		a.mu.Lock()
		if _, taken := a.pods[p.Metadata.Name]; taken {
			a.mu.Unlock()
			a.status(w, http.StatusConflict, "AlreadyExists", `pods "`+p.Metadata.Name+`" already exists`)
			return
		}
		a.nextMeta(&p.Metadata)
		p.Status = kubeapi.PodStatus{Phase: "Pending"}
		stored := p
		a.pods[p.Metadata.Name] = &stored
		a.mu.Unlock()
		if a.kubelet != nil {
			go a.kubelet(p.Metadata.Name)
		}
		a.reply(w, p)
	case len(parts) == 0 && r.URL.Query().Get("watch") == "true":
		a.watch(w, r)
	case len(parts) == 0:
		a.mu.Lock()
		items := []kubeapi.Pod{}
		for _, p := range a.pods {
			if selected(p.Metadata.Labels, r.URL.Query().Get("labelSelector")) {
				items = append(items, *p)
			}
		}
		a.mu.Unlock()
		a.reply(w, map[string]any{"kind": "PodList", "items": items})
	case len(parts) == 2 && parts[1] == "log":
		a.podLog(w, r, parts[0])
	case len(parts) == 1:
		a.pod(w, r, parts[0])
	default:
		a.status(w, http.StatusNotFound, "NotFound", "no such path")
	}
}

func (a *apiServer) pod(w http.ResponseWriter, r *http.Request, name string) {
	a.mu.Lock()
	p, ok := a.pods[name]
	if !ok {
		a.mu.Unlock()
		a.status(w, http.StatusNotFound, "NotFound", `pods "`+name+`" not found`)
		return
	}
	switch r.Method {
	case http.MethodGet:
		out := *p
		a.mu.Unlock()
		a.reply(w, out)
	case http.MethodPatch:
		var patch kubeapi.Pod
		_ = json.NewDecoder(r.Body).Decode(&patch)
		if p.Metadata.Annotations == nil {
			p.Metadata.Annotations = map[string]string{}
		}
		for k, v := range patch.Metadata.Annotations {
			p.Metadata.Annotations[k] = v
		}
		a.changed(p, "MODIFIED")
		out := *p
		a.mu.Unlock()
		a.reply(w, out)
	case http.MethodDelete:
		var opts struct {
			Preconditions struct{ UID string }
		}
		_ = json.NewDecoder(r.Body).Decode(&opts)
		if uid := opts.Preconditions.UID; uid != "" && uid != p.Metadata.UID {
			a.mu.Unlock()
			a.status(w, http.StatusConflict, "Conflict", "Precondition failed: UID in precondition: "+uid+", UID in object meta: "+p.Metadata.UID)
			return
		}
		// The kubelet stops SC (SIGTERM, exit 0) and the pod goes.
		for i := range p.Status.ContainerStatuses {
			p.Status.ContainerStatuses[i].State = kubeapi.ContainerState{Terminated: &kubeapi.StateTerminated{ExitCode: 0, Reason: "Completed"}}
		}
		now := time.Now().UTC().Format(time.RFC3339)
		p.Metadata.DeletionTimestamp = &now
		a.changed(p, "MODIFIED")
		delete(a.pods, name)
		a.changed(p, "DELETED")
		a.gone[name] = *p
		out := *p
		a.mu.Unlock()
		a.reply(w, out)
	default:
		a.mu.Unlock()
		a.status(w, http.StatusMethodNotAllowed, "MethodNotAllowed", r.Method)
	}
}

// changed gives p a new resource version and tells its watchers; the
// caller holds mu.
func (a *apiServer) changed(p *kubeapi.Pod, typ string) {
	a.rv++
	p.Metadata.ResourceVersion = strconv.Itoa(a.rv)
	for _, ch := range a.watchers[p.Metadata.Name] {
		select {
		case ch <- kubeapi.PodEvent{Type: typ, Pod: *p}:
		default: // a watcher that does not keep up misses it, as on a real server's full buffer
		}
	}
}

// update changes a pod as the kubelet would, and tells its watchers.
func (a *apiServer) update(name string, f func(p *kubeapi.Pod)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if p, ok := a.pods[name]; ok {
		f(p)
		a.changed(p, "MODIFIED")
	}
}

func (a *apiServer) watch(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Query().Get("fieldSelector"), "metadata.name=")
	since, _ := strconv.Atoi(r.URL.Query().Get("resourceVersion"))
	ch := make(chan kubeapi.PodEvent, 64)
	a.mu.Lock()
	if p, ok := a.pods[name]; ok {
		if rv, _ := strconv.Atoi(p.Metadata.ResourceVersion); rv > since {
			ch <- kubeapi.PodEvent{Type: "MODIFIED", Pod: *p}
		}
	} else if p, ok := a.gone[name]; ok {
		if rv, _ := strconv.Atoi(p.Metadata.ResourceVersion); rv > since {
			ch <- kubeapi.PodEvent{Type: "DELETED", Pod: p}
		}
	}
	a.watchers[name] = append(a.watchers[name], ch)
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		ws := a.watchers[name]
		for i, c := range ws {
			if c == ch {
				a.watchers[name] = append(ws[:i], ws[i+1:]...)
				break
			}
		}
	}()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.(http.Flusher).Flush()
	enc := json.NewEncoder(w)
	for {
		select {
		case <-r.Context().Done():
			return
		case ev := <-ch:
			_ = enc.Encode(ev)
			w.(http.Flusher).Flush()
		}
	}
}

func (a *apiServer) podLog(w http.ResponseWriter, r *http.Request, name string) {
	a.mu.Lock()
	logs, ok := a.logs[name]
	_, exists := a.pods[name]
	a.mu.Unlock()
	if !ok && !exists {
		a.status(w, http.StatusNotFound, "NotFound", `pods "`+name+`" not found`)
		return
	}
	_, _ = io.WriteString(w, logs)
}

// serveSimple serves secrets and services: create, get, delete.
func (a *apiServer) serveSimple(w http.ResponseWriter, r *http.Request, kind string, parts []string) {
	if kind == "secrets" && r.Method == http.MethodPost && a.beforeSecret != nil {
		a.beforeSecret()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case len(parts) == 0 && r.Method == http.MethodPost && kind == "secrets":
		var s kubeapi.Secret
		_ = json.NewDecoder(r.Body).Decode(&s)
		if _, taken := a.secrets[s.Metadata.Name]; taken {
			a.status(w, http.StatusConflict, "AlreadyExists", `secrets "`+s.Metadata.Name+`" already exists`)
			return
		}
		a.nextMeta(&s.Metadata)
		s.Data = map[string][]byte{}
		for k, v := range s.StringData {
			s.Data[k] = []byte(v)
		}
		s.StringData = nil
		a.secrets[s.Metadata.Name] = &s
		a.reply(w, s)
	case len(parts) == 0 && r.Method == http.MethodPost:
		var s kubeapi.Service
		_ = json.NewDecoder(r.Body).Decode(&s)
		if _, taken := a.services[s.Metadata.Name]; taken {
			a.status(w, http.StatusConflict, "AlreadyExists", `services "`+s.Metadata.Name+`" already exists`)
			return
		}
		a.nextMeta(&s.Metadata)
		a.services[s.Metadata.Name] = &s
		a.reply(w, s)
	case len(parts) == 1:
		var uid string
		var obj any
		if kind == "secrets" {
			if s, ok := a.secrets[parts[0]]; ok {
				uid, obj = s.Metadata.UID, *s
			}
		} else if s, ok := a.services[parts[0]]; ok {
			uid, obj = s.Metadata.UID, *s
		}
		if obj == nil {
			a.status(w, http.StatusNotFound, "NotFound", kind+` "`+parts[0]+`" not found`)
			return
		}
		if r.Method == http.MethodGet {
			a.reply(w, obj)
			return
		}
		var opts struct {
			Preconditions struct{ UID string }
		}
		_ = json.NewDecoder(r.Body).Decode(&opts)
		if p := opts.Preconditions.UID; p != "" && p != uid {
			a.status(w, http.StatusConflict, "Conflict", "Precondition failed: UID in precondition: "+p)
			return
		}
		delete(a.secrets, parts[0])
		if kind == "services" {
			delete(a.services, parts[0])
		}
		a.reply(w, map[string]any{"kind": "Status", "status": "Success"})
	default:
		a.status(w, http.StatusNotFound, "NotFound", "no such path")
	}
}

// selected reports whether labels match an equality selector (k=v,k2=v2).
func selected(labels map[string]string, selector string) bool {
	for _, term := range strings.Split(selector, ",") {
		if term == "" {
			continue
		}
		k, v, _ := strings.Cut(term, "=")
		if labels[k] != v {
			return false
		}
	}
	return true
}

// addPod puts a pod the plugin did not make (the build pod) in the store.
func (a *apiServer) addPod(p kubeapi.Pod) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.nextMeta(&p.Metadata)
	a.pods[p.Metadata.Name] = &p
}

// addSecret puts a secret the pipeline made in the store.
func (a *apiServer) addSecret(name string, data map[string][]byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := kubeapi.Secret{Metadata: kubeapi.ObjectMeta{Name: name}, Data: data}
	a.nextMeta(&s.Metadata)
	a.secrets[name] = &s
}

// count is how many requests of method on resource were made.
func (a *apiServer) count(method, resource string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls[method+" "+resource]
}

// names are the stored objects of kind.
func (a *apiServer) names(kind string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	switch kind {
	case "pods":
		for n := range a.pods {
			out = append(out, n)
		}
	case "secrets":
		for n := range a.secrets {
			out = append(out, n)
		}
	case "services":
		for n := range a.services {
			out = append(out, n)
		}
	}
	return out
}

// readyKubelet plays a kubelet that runs SC and marks its pod Ready.
func (a *apiServer) readyKubelet(name string) {
	a.update(name, func(p *kubeapi.Pod) {
		p.Status.Phase = "Running"
		p.Status.PodIP = "10.244.0.9"
		p.Status.Conditions = []kubeapi.PodCondition{{Type: "PodScheduled", Status: "True"}, {Type: "Ready", Status: "True"}}
		p.Status.ContainerStatuses = []kubeapi.ContainerStatus{{Name: scContainer, Ready: true, State: kubeapi.ContainerState{Running: &kubeapi.StateRunning{}}}}
	})
	a.mu.Lock()
	a.logs[name] = "Sauce Connect is up, you may start your tests\n"
	a.mu.Unlock()
}
