package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/kubeapi"
)

// BuildPod is one pipeline's pod on the node, run the way drone-runner-kube
// runs pipelines on Kubernetes (its engine/engine_impl.go and convert.go):
// every step is a container of the build pod from the start, running a
// placeholder image, and a step runs when the runner swaps its image in;
// the runner then waits for that container to terminate and reads its exit
// code. (Harness CI's engine also runs each step in a container of the
// build pod, through an addon in it; to the plugin the two look alike.) The pod has a namespace
// of its own, runs as the `ci-builds` service account bound to
// testdata/kubernetes/role.yaml as written (its token mounted, HOSTNAME the
// pod's name), shares an emptyDir at /harness (the outputs) between steps,
// and the pipeline's secrets are in a Secret named after the pod.
type BuildPod struct {
	NS, Name string
	node     *Node
	steps    map[string]string // container → the image it runs when started
}

// Step is one container of a build pod.
type Step struct {
	Name, Image string
	Env         map[string]string
	// SecretEnv are variables from the pipeline's secrets: name → key.
	SecretEnv map[string]string
	Command   []string
	// RunAsUser, when set, runs the step as that uid with what the
	// restricted Pod Security level asks of a container.
	RunAsUser int64
}

// NewBuildPod creates the namespace, service account, Role, secrets and the
// build pod, and waits until every placeholder runs.
func (n *Node) NewBuildPod(name string, secrets map[string]string, steps ...Step) (*BuildPod, error) {
	ctx := context.Background()
	b := &BuildPod{NS: "t-" + Random(10), Name: name, node: n, steps: map[string]string{}}
	post := func(path string, obj any) error { return n.Admin.Do(ctx, http.MethodPost, path, obj, nil) }
	if err := n.CreateBuildNamespace(b.NS); err != nil {
		return b, err
	}
	ns := "/api/v1/namespaces/" + b.NS
	secret := object("Secret", b.NS, name)
	secret["stringData"] = secrets
	if err := post(ns+"/secrets", secret); err != nil {
		return b, err
	}
	var containers []map[string]any
	for _, s := range steps {
		b.steps[s.Name] = s.Image
		var env []map[string]any
		for k, v := range s.Env {
			env = append(env, map[string]any{"name": k, "value": v})
		}
		for k, key := range s.SecretEnv {
			env = append(env, map[string]any{"name": k, "valueFrom": map[string]any{"secretKeyRef": map[string]any{"name": name, "key": key}}})
		}
		c := map[string]any{"name": s.Name, "image": n.Sandbox, "imagePullPolicy": "Never", "env": env,
			"volumeMounts": []map[string]any{{"name": "harness", "mountPath": "/harness"}}}
		if s.Command != nil {
			c["command"] = s.Command
		}
		if s.RunAsUser != 0 {
			c["securityContext"] = map[string]any{"runAsNonRoot": true, "runAsUser": s.RunAsUser, "allowPrivilegeEscalation": false,
				"capabilities": map[string]any{"drop": []string{"ALL"}}, "seccompProfile": map[string]any{"type": "RuntimeDefault"}}
		}
		containers = append(containers, c)
	}
	pod := object("Pod", b.NS, name)
	pod["spec"] = map[string]any{
		"serviceAccountName": "ci-builds", "restartPolicy": "Never", "containers": containers,
		"volumes": []map[string]any{{"name": "harness", "emptyDir": map[string]any{}}},
	}
	if err := post(ns+"/pods", pod); err != nil {
		return b, err
	}
	_, err := b.Wait(2*time.Minute, "all placeholders running", func(p kubeapi.Pod) bool {
		running := 0
		for _, cs := range p.Status.ContainerStatuses {
			if cs.State.Running != nil {
				running++
			}
		}
		return running == len(steps)
	})
	return b, err
}

// CreateBuildNamespace creates namespace ns with the `ci-builds` service
// account bound to testdata/kubernetes/role.yaml as written, as a cluster's
// admin prepares one for pipelines. DeleteNamespace removes it.
func (n *Node) CreateBuildNamespace(ns string) error {
	ctx := context.Background()
	if err := n.Admin.Do(ctx, http.MethodPost, "/api/v1/namespaces", object("Namespace", "", ns), nil); err != nil {
		return err
	}
	if err := n.Admin.Do(ctx, http.MethodPost, "/api/v1/namespaces/"+ns+"/serviceaccounts", object("ServiceAccount", ns, "ci-builds"), nil); err != nil {
		return err
	}
	return ApplyRole(n.Admin, ns)
}

// DeleteNamespace deletes a namespace and all in it.
func (n *Node) DeleteNamespace(ns string) error {
	return n.Admin.Do(context.Background(), http.MethodDelete, "/api/v1/namespaces/"+ns, nil, nil)
}

// RoleManifests are the documents of testdata/kubernetes/role.yaml, the
// README's Role and RoleBinding.
func RoleManifests() ([]map[string]any, error) {
	b, err := os.ReadFile(filepath.Join(Root(), "testdata", "kubernetes", "role.yaml"))
	if err != nil {
		return nil, err
	}
	var docs []map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); err != nil {
			if errors.Is(err, io.EOF) {
				return docs, nil
			}
			return nil, fmt.Errorf("role.yaml: %w", err)
		}
		docs = append(docs, doc)
	}
}

// ApplyRole applies role.yaml exactly as written in namespace ns, as
// `kubectl apply -n ns` would.
func ApplyRole(kc *kubeapi.Client, ns string) error {
	docs, err := RoleManifests()
	if err != nil {
		return err
	}
	for _, doc := range docs {
		kind := map[string]string{"Role": "roles", "RoleBinding": "rolebindings"}[fmt.Sprint(doc["kind"])]
		if kind == "" {
			return fmt.Errorf("role.yaml holds a %v, which ApplyRole does not apply", doc["kind"])
		}
		if err := kc.Do(context.Background(), http.MethodPost, "/apis/rbac.authorization.k8s.io/v1/namespaces/"+ns+"/"+kind, doc, nil); err != nil {
			return err
		}
	}
	return awaitBindings(kc, ns, docs)
}

// awaitBindings waits (at most 10 s) until the API server's authorizer lets
// every service account the RoleBindings name do the first thing their Role
// allows. The RBAC authorizer reads bindings from an informer cache, so a
// request made at once after the create can still be refused (a CI run saw
// exactly that); `kubectl apply` users meet the same lag.
func awaitBindings(kc *kubeapi.Client, ns string, docs []map[string]any) error {
	var verb, resource string
	var subjects []string
	for _, doc := range docs {
		b, err := yaml.Marshal(doc)
		if err != nil {
			return err
		}
		var d struct { // yaml.v3 keys: the field names in lower case
			Rules    []struct{ Resources, Verbs []string }
			Subjects []struct{ Kind, Name string }
		}
		if err := yaml.Unmarshal(b, &d); err != nil {
			return err
		}
		if len(d.Rules) > 0 && len(d.Rules[0].Verbs) > 0 && len(d.Rules[0].Resources) > 0 && verb == "" {
			verb, resource = d.Rules[0].Verbs[0], d.Rules[0].Resources[0]
		}
		for _, s := range d.Subjects {
			if s.Kind == "ServiceAccount" {
				subjects = append(subjects, "system:serviceaccount:"+ns+":"+s.Name)
			}
		}
	}
	if verb == "" {
		return errors.New("role.yaml: no rule with a verb and a resource")
	}
	for _, user := range subjects {
		if err := AwaitAllowed(kc, ns, user, verb, resource); err != nil {
			return fmt.Errorf("role.yaml applied, but %w", err)
		}
	}
	return nil
}

// AwaitAllowed waits (at most 10 s) until the authorizer lets user do verb
// on resource in ns: a binding just created is not in force at once.
func AwaitAllowed(kc *kubeapi.Client, ns, user, verb, resource string) error {
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		ok, reason, err := CanI(kc, ns, user, verb, resource, "")
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s still may not %s %s after 10 s (%q)", user, verb, resource, reason)
		}
	}
}

// CanI asks the API server's authorizer (a SubjectAccessReview) whether
// user may do verb on resource/sub in ns; a service account of ns is asked
// about with the groups the API server gives it.
func CanI(kc *kubeapi.Client, ns, user, verb, resource, sub string) (allowed bool, reason string, err error) {
	spec := map[string]any{"user": user, "resourceAttributes": map[string]any{"namespace": ns, "verb": verb, "resource": resource, "subresource": sub}}
	if strings.HasPrefix(user, "system:serviceaccount:"+ns+":") {
		spec["groups"] = []string{"system:serviceaccounts", "system:serviceaccounts:" + ns}
	}
	review := map[string]any{"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}
	var out struct {
		Status struct {
			Allowed bool   `json:"allowed"`
			Reason  string `json:"reason"`
		} `json:"status"`
	}
	if err := kc.Do(context.Background(), http.MethodPost, "/apis/authorization.k8s.io/v1/subjectaccessreviews", review, &out); err != nil {
		return false, "", err
	}
	return out.Status.Allowed, out.Status.Reason, nil
}

// object is the start of a Kubernetes object.
func object(kind, ns, name string) map[string]any {
	meta := map[string]any{"name": name}
	if ns != "" {
		meta["namespace"] = ns
	}
	return map[string]any{"apiVersion": "v1", "kind": kind, "metadata": meta}
}

// Pod reads the build pod.
func (b *BuildPod) Pod() (kubeapi.Pod, error) {
	return b.node.Admin.GetPod(context.Background(), b.NS, b.Name)
}

// Wait polls the build pod every 20 ms until ok, for at most limit.
func (b *BuildPod) Wait(limit time.Duration, what string, ok func(kubeapi.Pod) bool) (kubeapi.Pod, error) {
	deadline := time.Now().Add(limit)
	for {
		p, err := b.Pod()
		if err == nil && ok(p) {
			return p, nil
		}
		if time.Now().After(deadline) {
			return p, fmt.Errorf("build pod %s: not %s within %s (last error %v, status %+v)", b.Name, what, limit, err, p.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Start starts a step and returns at once (a Drone service, a Harness
// Background step): its image is swapped in for the placeholder's.
func (b *BuildPod) Start(name string) error {
	ctx := context.Background()
	path := "/api/v1/namespaces/" + b.NS + "/pods/" + b.Name
	for attempt := 0; ; attempt++ {
		// The pod as the server has it (a typed copy would drop fields).
		var p map[string]any
		if err := b.node.Admin.Do(ctx, http.MethodGet, path, nil, &p); err != nil {
			return err
		}
		for _, c := range p["spec"].(map[string]any)["containers"].([]any) {
			if c := c.(map[string]any); c["name"] == name {
				c["image"] = b.steps[name]
			}
		}
		err := b.node.Admin.Do(ctx, http.MethodPut, path, p, nil)
		if err == nil || attempt == 5 {
			return err
		}
	}
}

// Run runs a step to its end and returns its exit code.
func (b *BuildPod) Run(name string) (int, error) {
	if err := b.Start(name); err != nil {
		return 0, fmt.Errorf("start step %s: %w", name, err)
	}
	var code int
	_, err := b.Wait(3*time.Minute, "done with step "+name, func(p kubeapi.Pod) bool {
		for _, cs := range p.Status.ContainerStatuses {
			if cs.Name == name && strings.HasSuffix(cs.Image, b.steps[name]) && cs.State.Terminated != nil {
				code = int(cs.State.Terminated.ExitCode)
				return true
			}
		}
		return false
	})
	return code, err
}

// Logs returns a step's log; with timestamps, each line begins with the
// kubelet's RFC 3339 time of it.
func (b *BuildPod) Logs(name string, timestamps bool) (string, error) {
	return b.node.Logs(b.NS, b.Name, name, timestamps)
}

// Delete deletes the build pod's namespace and all in it.
func (b *BuildPod) Delete() error { return b.node.DeleteNamespace(b.NS) }
