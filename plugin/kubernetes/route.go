package kubernetes

import (
	"context"
	"net"
	"strconv"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/kubeapi"
)

// routeWait bounds the wait for a Service to route to a Ready tunnel pod.
const routeWait = 5 * time.Second

// awaitRoute waits, briefly, until the Service answers. The kubelet's Ready
// condition comes first; the endpoints controller and kube-proxy then take
// a moment to route to the pod, and a later step that came at once could
// find nothing there. From the build pod the plugin sees what later steps
// will see; if the Service does not answer in routeWait, that is a warning.
func (k *backend) awaitRoute(ctx context.Context, svc kubeapi.Service) {
	ip := svc.Spec.ClusterIP
	if ip == "" || ip == "None" {
		return
	}
	url := "http://" + net.JoinHostPort(ip, strconv.Itoa(k.cfg.APIPort))
	began := time.Now()
	rctx, cancel := context.WithTimeoutCause(ctx, routeWait, plugin.ErrReadyTimeout)
	defer cancel()
	if err := plugin.WaitReady(rctx, plugin.APITarget(k.s, url, nil), "service "+svc.Metadata.Name); err != nil {
		k.log.Warnf("service %s (%s) did not answer from this pod within %s (%v); later steps may have to retry", svc.Metadata.Name, ip, routeWait, err)
		return
	}
	k.log.Debugf("service %s routes to the tunnel %s after the pod was Ready", svc.Metadata.Name, time.Since(began).Round(time.Millisecond))
}

// endpoints is where later steps reach SC's API: the Service's DNS name
// when there is one, else the pod IP.
func (k *backend) endpoints(p kubeapi.Pod) plugin.Endpoints {
	port := strconv.Itoa(k.cfg.APIPort)
	ep := plugin.Endpoints{Probe: "http://" + net.JoinHostPort(p.Status.PodIP, port)}
	ep.Container = ep.Probe
	if k.cfg.Kubernetes.Service {
		ep.Container = "http://" + net.JoinHostPort(p.Metadata.Name+"."+k.ns+".svc", port)
	}
	return ep
}
