package plugin

import (
	"context"
	"fmt"
	"net/http"
	"strings"
)

// status prints whether this pipeline's tunnel is up and ready, with SC's
// /info. It fails when the tunnel is missing or not ready, so a pipeline
// can gate on it.
func (p *run) status(ctx context.Context) error {
	found, err := p.eng.ListContainers(ctx, tunnelLabels(p.cfg.TunnelName))
	if err != nil {
		return err
	}
	if len(found) == 0 {
		return fmt.Errorf("no tunnel named %s is running; start one with action start", p.cfg.TunnelName)
	}
	sc, err := p.eng.InspectContainer(ctx, found[0].ID)
	if err != nil {
		return err
	}
	p.opt.Masker.Add(secretsOfEnv(sc.Env)...)
	p.opt.Masker.Add(secretsOfArgs(sc.Cmd)...)
	if user, pass, ok := apiBasicAuth(sc.Env, sc.Cmd); ok {
		p.opt.HTTP = withBasicAuth(p.opt.HTTP, user, pass)
	}
	fmt.Fprintf(p.opt.Out, "tunnel:    %s\ncontainer: %s (%s)\n", p.cfg.TunnelName, short(sc.ID), sc.State.Status)
	if !sc.State.Running {
		return fmt.Errorf("tunnel %s is not running: its container has %s with code %d", p.cfg.TunnelName, sc.State.Status, sc.State.ExitCode)
	}
	self, err := whereAmI(ctx, p.eng, p.log)
	if err != nil {
		return err
	}
	owner, err := netnsOwner(ctx, p.eng, self)
	if err != nil {
		return err
	}
	ep := ResolveEndpoints(p.cfg, owner, sc, p.opt.DockerHost)
	if ep.Container != "" {
		fmt.Fprintf(p.opt.Out, "API for container steps: %s\n", ep.Container)
	}
	if ep.Host != "" {
		fmt.Fprintf(p.opt.Out, "API for host steps:      %s\n", ep.Host)
	}
	code, body, err := apiGet(ctx, p.opt.HTTP, ep.Probe+"/readyz")
	if err != nil {
		return fmt.Errorf("ask tunnel %s whether it is ready: %w", p.cfg.TunnelName, err)
	}
	if code != http.StatusOK {
		return fmt.Errorf("tunnel %s is running but not ready: /readyz answered HTTP %d", p.cfg.TunnelName, code)
	}
	fmt.Fprintln(p.opt.Out, "ready:     yes")
	if code, body, err = apiGet(ctx, p.opt.HTTP, ep.Probe+"/info"); err == nil && code == http.StatusOK {
		fmt.Fprintf(p.opt.Out, "info:      %s\n", strings.TrimSpace(body))
	}
	return nil
}
