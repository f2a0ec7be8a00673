package docker

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
)

// status prints whether this pipeline's tunnel is up and ready, with SC's
// /info. It fails when the tunnel is missing or not ready, so a pipeline
// can gate on it.
func (p *Backend) status(ctx context.Context) error {
	found, err := p.containers(ctx)
	if err != nil {
		return err
	}
	if len(found) == 0 {
		return fmt.Errorf("no tunnel named %s is running; start one with action start", p.Cfg.TunnelName)
	}
	sc, file, err := p.learnSecrets(ctx, found[0].ID)
	if err != nil {
		return err
	}
	if sc.ID == "" {
		return fmt.Errorf("no tunnel named %s is running; start one with action start", p.Cfg.TunnelName)
	}
	if user, pass, ok := plugin.APIBasicAuth(sc.Env, sc.Cmd, file); ok {
		p.Opt.HTTP = plugin.WithBasicAuth(p.Opt.HTTP, user, pass)
	}
	fmt.Fprintf(p.Opt.Out, "tunnel:    %s\ncontainer: %s (%s)\n", p.Cfg.TunnelName, plugin.Short(sc.ID), sc.State.Status)
	if !sc.State.Running {
		return fmt.Errorf("tunnel %s is not running: its container has %s with code %d", p.Cfg.TunnelName, sc.State.Status, sc.State.ExitCode)
	}
	self, err := whereAmI(ctx, p.eng, p.Log)
	if err != nil {
		return err
	}
	owner, err := netnsOwner(ctx, p.eng, self)
	if err != nil {
		return err
	}
	ep := ResolveEndpoints(p.Cfg, owner, sc, p.access.Host)
	if ep.Container != "" {
		fmt.Fprintf(p.Opt.Out, "API for container steps: %s\n", ep.Container)
	}
	if ep.Host != "" {
		fmt.Fprintf(p.Opt.Out, "API for host steps:      %s\n", ep.Host)
	}
	code, body, err := p.Get(ctx, ep.Probe+"/readyz")
	if err != nil {
		return fmt.Errorf("ask tunnel %s whether it is ready: %w", p.Cfg.TunnelName, err)
	}
	if code != http.StatusOK {
		return fmt.Errorf("tunnel %s is running but not ready: /readyz answered HTTP %d", p.Cfg.TunnelName, code)
	}
	fmt.Fprintln(p.Opt.Out, "ready:     yes")
	if code, body, err = p.Get(ctx, ep.Probe+"/info"); err == nil && code == http.StatusOK {
		fmt.Fprintf(p.Opt.Out, "info:      %s\n", strings.TrimSpace(body))
	}
	return nil
}
