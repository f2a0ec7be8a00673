// Package kubernetes is the Kubernetes backend: where pipelines run as pods
// and there is no Docker socket, it runs Sauce Connect 5 as a pod owned by
// the build pod, with a Secret for the credentials (and a Service), so that
// the cluster removes the tunnel with the build pod whatever happens.
package kubernetes

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/kubeapi"
)

// scContainer is the name of the SC container in the tunnel pod.
const scContainer = "sauce-connect"

// Keys of the credentials Secret.
const (
	secretUsername  = "username"
	secretAccessKey = "access-key"
)

// rbacHint tells what to do about a forbidden call.
const rbacHint = "grant the build pod's service account the Role in docs/kubernetes.md (testdata/kubernetes/role.yaml)"

// backend is SC as a pod owned by the build pod. Its configuration is the
// session's, read only.
type backend struct {
	s   *plugin.Session
	cfg plugin.Config
	log *logrus.Entry
	kc  *kubeapi.Client
	// ns is the namespace of the build pod and the tunnel; pod the build
	// pod's name (kubernetes_pod, else HOSTNAME).
	ns, pod string
}

// waiter is a backend that can follow the pipeline's own SC (action wait
// in a build pod).
type waiter interface {
	Wait(ctx context.Context) (*plugin.Tunnel, error)
}

var (
	_ plugin.Backend = (*backend)(nil)
	_ waiter         = (*backend)(nil)
)

// New returns the Kubernetes backend for session s; ns is the service
// account's namespace, used unless kubernetes_namespace is set. Settings
// the backend cannot honour are refused (exit 2).
func New(s *plugin.Session, kc *kubeapi.Client, ns string) (plugin.Backend, error) {
	c := s.Cfg
	if c.ConfigFile != "" && (c.Action == plugin.ActionStart || c.Action == plugin.ActionRun) {
		// The file is in the build pod's workspace, which the tunnel pod cannot see.
		return nil, &plugin.SettingsError{Problems: []string{"invalid setting config_file (PLUGIN_CONFIG_FILE): not available with the Kubernetes backend, whose tunnel pod cannot see the workspace; pass the options as settings or sc_args"}}
	}
	if _, _, ok := plugin.APIBasicAuth(plugin.EnvList(c.Env), c.SCArgs, nil); ok {
		// The kubelet's readiness probe cannot send credentials from a Secret.
		return nil, &plugin.SettingsError{Problems: []string{"invalid setting env (PLUGIN_ENV): SAUCE_API_BASIC_AUTH (or --api-basic-auth) is not available with the Kubernetes backend, whose readiness probe cannot authenticate; leave the API without basic auth (the tunnel pod's API is reachable only in the cluster)"}}
	}
	if c.Kubernetes.Namespace != "" {
		ns = c.Kubernetes.Namespace
	}
	pod := c.Kubernetes.Pod
	if pod == "" {
		pod, _ = os.Hostname()
	}
	return &backend{s: s, cfg: c, log: s.Log, kc: kc, ns: ns, pod: pod}, nil
}

// forbidden explains an RBAC refusal.
func forbidden(err error) error {
	if kubeapi.IsForbidden(err) {
		return fmt.Errorf("%w; %s", err, rbacHint)
	}
	return err
}

// maxHostname is where the kubelet cuts a pod's name to make its hostname.
const maxHostname = 63

// buildPod finds the pod the plugin runs in, by name (HOSTNAME by default).
// The kubelet cuts a pod's hostname to 63 characters, so a build pod with a
// longer name (Harness and Drone name them after the pipeline) is not found
// by it: then it is the one pod whose name starts with those 63 characters
// and whose IP is one of this process's addresses.
func (k *backend) buildPod(ctx context.Context) (kubeapi.Pod, error) {
	name := k.pod
	owner, err := k.kc.GetPod(ctx, k.ns, name)
	if err == nil || !kubeapi.IsNotFound(err) || len(name) != maxHostname {
		return owner, err
	}
	pods, lerr := k.kc.ListPods(ctx, k.ns, "")
	if lerr != nil {
		return owner, err
	}
	mine := localAddresses()
	var found []kubeapi.Pod
	for _, p := range pods {
		if strings.HasPrefix(p.Metadata.Name, name) && p.Status.PodIP != "" && mine[p.Status.PodIP] {
			found = append(found, p)
		}
	}
	if len(found) != 1 {
		return owner, fmt.Errorf("%w (a kubelet cuts hostnames to %d characters, and %d pods starting with it have this step's IP)", err, maxHostname, len(found))
	}
	k.log.Debugf("build pod %s found by its IP %s (HOSTNAME is its name cut to %d characters)", found[0].Metadata.Name, found[0].Status.PodIP, maxHostname)
	return found[0], nil
}

// localAddresses are the IP addresses of this process's network interfaces.
func localAddresses() map[string]bool {
	out := map[string]bool{}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			out[n.IP.String()] = true
		}
	}
	return out
}
