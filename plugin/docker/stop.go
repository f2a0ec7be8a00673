package docker

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

// containers lists this tunnel's SC containers.
func (p *Backend) containers(ctx context.Context) ([]engine.Summary, error) {
	return p.eng.ListContainers(ctx, tunnelLabels(p.Cfg.TunnelName))
}

// stop ends the tunnel of this pipeline: SIGTERM, SC's own drain within
// stop_timeout, its log shown (and saved to logs_file), the container
// removed. Nothing to stop is a warning, not a failure.
func (p *Backend) stop(ctx context.Context) error {
	found, err := p.containers(ctx)
	if err != nil {
		return err
	}
	if len(found) == 0 {
		p.Log.Warnf("no tunnel named %s is running; nothing to stop", p.Cfg.TunnelName)
	}
	for _, s := range found {
		if err := p.shutdown(ctx, s.ID); err != nil {
			return err
		}
	}
	// The watchdog ends by itself once SC is gone; remove it all the same.
	dogs, err := p.eng.ListContainers(ctx, watchdogLabels(p.Cfg.TunnelName))
	if err != nil {
		return err
	}
	for _, d := range dogs {
		if err := p.eng.RemoveContainer(ctx, d.ID); err != nil {
			return err
		}
	}
	return nil
}

// shutdown stops one SC container gracefully and removes it.
func (p *Backend) shutdown(ctx context.Context, id string) error {
	// Finish even if the plugin is being cancelled: a half-stopped tunnel helps nobody.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.Cfg.StopTimeout+plugin.CleanupTimeout)
	defer cancel()
	began := p.Opt.Now()
	log := p.Log.WithField("container", plugin.Short(id))
	before, _, err := p.learnSecrets(ctx, id)
	if err != nil {
		return err
	}
	recorded := sauceID(ctx, p.eng, id)
	fmt.Fprintf(p.Opt.Out, "+ docker stop --time %d %s\n", int(p.Cfg.StopTimeout.Seconds()), plugin.Short(id))
	killed, ungraceful, err := stopSC(ctx, p.eng, id, before, p.Cfg.StopTimeout)
	if err != nil {
		return err
	}
	if p.Cfg.LogsFile != "" {
		if err := p.saveLogs(ctx, id); err != nil {
			log.WithError(err).Warn("could not save sauce connect's log")
		}
	}
	p.PrintLog(p.tail(ctx, id))
	fmt.Fprintf(p.Opt.Out, "+ docker rm -f %s\n", plugin.Short(id))
	if err := p.eng.RemoveContainer(ctx, id); err != nil {
		return err
	}
	if killed {
		log.Warnf("sauce connect did not finish draining within stop_timeout (%s) and was killed; raise stop_timeout to give it longer", p.Cfg.StopTimeout)
	}
	if ungraceful != "" {
		plugin.Backstop(ctx, log, before.Env, p.Cfg.RESTURL, p.Cfg.TunnelName, recorded, ungraceful)
	}
	log.Infof("tunnel %s stopped and removed in %s", p.Cfg.TunnelName, p.Opt.Now().Sub(began).Round(time.Millisecond))
	return nil
}

// stopSC stops SC's container id (found as before; empty when it was gone)
// gracefully within timeout and says whether it was killed and, from how it
// ended, whether it missed its graceful shutdown (see Ungraceful).
func stopSC(ctx context.Context, eng Engine, id string, before engine.Container, timeout time.Duration) (killed bool, ungraceful string, err error) {
	killed, err = eng.StopContainer(ctx, id, timeout)
	after, _ := eng.InspectContainer(ctx, id)
	return killed, Ungraceful(before, after.State.ExitCode, killed), err
}

// Ungraceful says how SC ended without its graceful shutdown, "" when it
// had one: before is SC as the stop found it, exitCode how it ended, killed
// whether stop_timeout ran out. SC exits 0 after a SIGTERM it drained on.
func Ungraceful(before engine.Container, exitCode int, killed bool) string {
	switch {
	case before.ID == "":
		return "" // gone before the stop: nothing is known of it
	case !before.State.Running && before.State.Status != "created":
		if before.State.ExitCode != 0 {
			return fmt.Sprintf("sauce connect had already ended with exit code %d", before.State.ExitCode)
		}
		return ""
	case killed:
		return "sauce connect was killed when stop_timeout ran out"
	case exitCode != 0:
		return fmt.Sprintf("sauce connect ended with exit code %d on SIGTERM", exitCode)
	}
	return ""
}

// learnSecrets adds the secrets SC holds (its environment, arguments and
// config file) to the masker before anything of SC's is printed: a stop or
// status step may have been given none of them. It returns SC as it found
// it (empty when SC is gone) and its config file's options.
func (p *Backend) learnSecrets(ctx context.Context, id string) (engine.Container, map[string]string, error) {
	c, err := p.eng.InspectContainer(ctx, id)
	if engine.IsNotFound(err) {
		return engine.Container{}, nil, nil
	}
	if err != nil {
		return c, nil, err
	}
	secrets, file := scSecrets(ctx, p.eng, c)
	p.Opt.Masker.Add(secrets...)
	return c, file, nil
}

// scSecrets reads what is secret of SC's container c: in its variables,
// its arguments and the config file the plugin gave it, whose options it
// returns too.
func scSecrets(ctx context.Context, eng Engine, c engine.Container) ([]string, map[string]string) {
	secrets := append(plugin.SecretsOfEnv(c.Env), plugin.SecretsOfArgs(c.Cmd)...)
	for _, kv := range c.Env {
		if path, ok := strings.CutPrefix(kv, "SAUCE_CONFIG_FILE="); ok {
			raw, err := eng.ReadFile(ctx, c.ID, path)
			if err != nil {
				break
			}
			file, err := plugin.ParseSCFile(raw)
			if err != nil {
				break
			}
			return append(secrets, plugin.SecretsOfFile(file)...), file
		}
	}
	return secrets, nil
}

// saveLogs streams SC's whole log, masked, into logs_file (0644, for a
// later step to upload, whoever it runs as): never all of it in memory, as
// a long tunnel with --log-http logs a lot.
func (p *Backend) saveLogs(ctx context.Context, id string) error {
	f, err := os.OpenFile(p.Cfg.LogsFile, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("write logs_file: %w", err)
	}
	w := p.Opt.Masker.Writer(f)
	err = p.eng.ContainerLogs(ctx, id, engine.LogsOptions{}, w, w)
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write logs_file: %w", err)
	}
	p.Log.Infof("sauce connect's log saved to %s", p.Cfg.LogsFile)
	return nil
}

// foreground runs the tunnel for as long as the plugin runs: SC's log is
// streamed, SIGTERM/SIGINT stop it gracefully, and SC dying is a failure.
func (p *Backend) foreground(ctx context.Context) error {
	t, err := p.start(ctx, true)
	if err != nil {
		return err
	}
	defer t.stopLogs()
	select {
	case <-ctx.Done():
		p.Log.Infof("%v: stopping tunnel %s", context.Cause(ctx), t.Name)
		return p.shutdown(ctx, t.ID)
	case code := <-t.exited:
		if sc, err := p.eng.InspectContainer(context.WithoutCancel(ctx), t.ID); err == nil && code != 0 {
			plugin.Backstop(context.WithoutCancel(ctx), p.Log, sc.Env, p.Cfg.RESTURL, t.Name, t.SauceID, fmt.Sprintf("sauce connect ended with exit code %d while the tunnel was up", code))
		}
		if p.Cfg.LogsFile != "" {
			if err := p.saveLogs(ctx, t.ID); err != nil {
				p.Log.WithError(err).Warn("could not save sauce connect's log")
			}
		}
		if err := p.eng.RemoveContainer(context.WithoutCancel(ctx), t.ID); err != nil {
			p.Log.WithError(err).Warn("could not remove the sauce connect container")
		}
		return fmt.Errorf("sauce connect exited with code %d while the tunnel was up", code)
	}
}
