package docker

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

// Status prints whether this pipeline's tunnel is up and ready, with SC's
// /info. It fails when the tunnel is missing or not ready, so a pipeline
// can gate on it.
func (b *backend) Status(ctx context.Context) error {
	all, err := b.eng.ListContainers(ctx, nil)
	if err != nil {
		return err
	}
	found := mine(all, b.cfg.TunnelName)
	if len(found) == 0 {
		return fmt.Errorf("no tunnel named %s is running; start one with action start", b.cfg.TunnelName)
	}
	sc, file, err := b.learnSecrets(ctx, found[0].ID)
	if err != nil {
		return err
	}
	if sc.ID == "" {
		return fmt.Errorf("no tunnel named %s is running; start one with action start", b.cfg.TunnelName)
	}
	fmt.Fprintf(b.s.Opt.Out, "tunnel:    %s\ncontainer: %s (%s)\n", b.cfg.TunnelName, engine.ShortID(sc.ID), sc.State.Status)
	if !sc.State.Running {
		return fmt.Errorf("tunnel %s is not running: its container has %s with code %d", b.cfg.TunnelName, sc.State.Status, sc.State.ExitCode)
	}
	st, err := locate(ctx, b.eng, b.cfg, b.access, all, b.here(), b.log, b.s.Opt.Now())
	if err != nil {
		return err
	}
	ep := resolveEndpoints(b.cfg, st.Owner, sc, b.access.Host)
	if ep.Container != "" {
		fmt.Fprintf(b.s.Opt.Out, "API for container steps: %s\n", ep.Container)
	}
	if ep.Host != "" {
		fmt.Fprintf(b.s.Opt.Out, "API for host steps:      %s\n", ep.Host)
	}
	client := b.s.Opt.HTTP
	if user, pass, ok := plugin.APIBasicAuth(sc.Env, sc.Cmd, file); ok {
		client = plugin.WithBasicAuth(client, user, pass)
	}
	return b.askReady(ctx, client, ep.Probe)
}

// askReady asks SC's API at api whether it is ready, and prints its /info.
func (b *backend) askReady(ctx context.Context, client *http.Client, api string) error {
	code, err := plugin.Readyz(ctx, client, api)
	if err != nil {
		return fmt.Errorf("ask tunnel %s whether it is ready: %w", b.cfg.TunnelName, err)
	}
	if code != http.StatusOK {
		return fmt.Errorf("tunnel %s is running but not ready: /readyz answered HTTP %d", b.cfg.TunnelName, code)
	}
	fmt.Fprintln(b.s.Opt.Out, "ready:     yes")
	if code, body, err := plugin.APIGet(ctx, client, api+"/info"); err == nil && code == http.StatusOK {
		fmt.Fprintf(b.s.Opt.Out, "info:      %s\n", strings.TrimSpace(body))
	}
	return nil
}
