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

// Stop ends the tunnel of this pipeline: SIGTERM, SC's own drain within
// stop_timeout, its log shown (and saved to logs_file), the container
// removed. Nothing to stop is a warning, not a failure.
func (b *backend) Stop(ctx context.Context) error {
	found, err := b.containers(ctx)
	if err != nil {
		return err
	}
	if len(found) == 0 {
		b.log.Warnf("no tunnel named %s is running; nothing to stop", b.cfg.TunnelName)
	}
	for _, s := range found {
		if err := b.shutdown(ctx, s.ID); err != nil {
			return err
		}
	}
	// The watchdog ends by itself once SC is gone; remove it all the same.
	dogs, err := b.eng.ListContainers(ctx, watchdogLabels(b.cfg.TunnelName))
	if err != nil {
		return err
	}
	for _, d := range dogs {
		if err := b.eng.RemoveContainer(ctx, d.ID); err != nil {
			return err
		}
	}
	return nil
}

// shutdown stops one SC container gracefully and removes it.
func (b *backend) shutdown(ctx context.Context, id string) error {
	// Finish even if the plugin is being cancelled: a half-stopped tunnel helps nobody.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.cfg.StopTimeout+plugin.CleanupTimeout)
	defer cancel()
	began := b.s.Opt.Now()
	log := b.log.WithField("container", engine.ShortID(id))
	before, _, err := b.learnSecrets(ctx, id)
	if err != nil {
		return err
	}
	recorded := sauceID(ctx, b.eng, id)
	fmt.Fprintf(b.s.Opt.Out, "+ docker stop --time %d %s\n", int(b.cfg.StopTimeout.Seconds()), engine.ShortID(id))
	killed, ungraceful, err := stopSC(ctx, b.eng, id, before, b.cfg.StopTimeout)
	if err != nil {
		return err
	}
	if b.cfg.LogsFile != "" {
		if err := b.saveLogs(ctx, id); err != nil {
			log.WithError(err).Warn("could not save sauce connect's log")
		}
	}
	b.s.PrintLog(b.tail(ctx, id))
	fmt.Fprintf(b.s.Opt.Out, "+ docker rm -f %s\n", engine.ShortID(id))
	if err := b.eng.RemoveContainer(ctx, id); err != nil {
		return err
	}
	if killed {
		log.Warnf("sauce connect did not finish draining within stop_timeout (%s) and was killed; raise stop_timeout to give it longer", b.cfg.StopTimeout)
	}
	if ungraceful != "" {
		plugin.Backstop(ctx, log, before.Env, b.cfg.RESTURL, b.cfg.TunnelName, recorded, ungraceful)
	}
	log.Infof("tunnel %s stopped and removed in %s", b.cfg.TunnelName, b.s.Opt.Now().Sub(began).Round(time.Millisecond))
	return nil
}

// stopSC stops SC's container id (found as before; empty when it was gone)
// gracefully within timeout and says whether it was killed and, from how it
// ended, whether it missed its graceful shutdown (see ungracefulEnd).
func stopSC(ctx context.Context, eng Engine, id string, before engine.Container, timeout time.Duration) (killed bool, ungraceful string, err error) {
	killed, err = eng.StopContainer(ctx, id, timeout)
	after, _ := eng.InspectContainer(ctx, id)
	return killed, ungracefulEnd(before, after.State.ExitCode, killed), err
}

// ungracefulEnd says how SC ended without its graceful shutdown, "" when it
// had one: before is SC as the stop found it, exitCode how it ended, killed
// whether stop_timeout ran out. SC exits 0 after a SIGTERM it drained on.
func ungracefulEnd(before engine.Container, exitCode int, killed bool) string {
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
func (b *backend) learnSecrets(ctx context.Context, id string) (engine.Container, map[string]string, error) {
	c, err := b.eng.InspectContainer(ctx, id)
	if engine.IsNotFound(err) {
		return engine.Container{}, nil, nil
	}
	if err != nil {
		return c, nil, err
	}
	secrets, file := scSecrets(ctx, b.eng, c)
	b.s.Opt.Masker.Add(secrets...)
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
func (b *backend) saveLogs(ctx context.Context, id string) error {
	f, err := os.OpenFile(b.cfg.LogsFile, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("write logs_file: %w", err)
	}
	w := b.s.Opt.Masker.Writer(f)
	err = b.eng.ContainerLogs(ctx, id, engine.LogsOptions{}, w, w)
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write logs_file: %w", err)
	}
	b.log.Infof("sauce connect's log saved to %s", b.cfg.LogsFile)
	return nil
}
