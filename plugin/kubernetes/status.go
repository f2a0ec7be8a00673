package kubernetes

import (
	"context"
	"fmt"
	"net/http"
	"strings"
)

// Status prints the tunnel pod's phase and readiness, and SC's /info when
// the pod is reachable.
func (k *backend) Status(ctx context.Context) error {
	pods, err := k.kc.ListPods(ctx, k.ns, kubeSelector(k.cfg.TunnelName))
	if err != nil {
		return fmt.Errorf("look for this tunnel's pod: %w", forbidden(err))
	}
	if len(pods) == 0 {
		return fmt.Errorf("no tunnel named %s is running; start one with action start", k.cfg.TunnelName)
	}
	p := pods[0]
	ready, _ := podState(p)
	fmt.Fprintf(k.s.Opt.Out, "tunnel:    %s\npod:       %s (phase %s)\nready:     %t\n", k.cfg.TunnelName, p.Metadata.Name, p.Status.Phase, ready)
	if !ready {
		return fmt.Errorf("tunnel %s is not ready (pod phase %s)", k.cfg.TunnelName, p.Status.Phase)
	}
	ep := k.endpoints(p)
	fmt.Fprintf(k.s.Opt.Out, "API:       %s\n", ep.Container)
	if code, body, err := k.s.Get(ctx, ep.Probe+"/info"); err == nil && code == http.StatusOK {
		fmt.Fprintf(k.s.Opt.Out, "info:      %s\n", strings.TrimSpace(body))
	} else {
		fmt.Fprintf(k.s.Opt.Out, "info:      not reachable from here (%v)\n", err)
	}
	return nil
}
