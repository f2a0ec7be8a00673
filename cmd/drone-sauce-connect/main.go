// Command drone-sauce-connect opens a Sauce Connect 5 tunnel for a CI
// pipeline (Drone, Harness CI, GitHub Actions). main only wires: signals,
// settings, logging, the engine, and the exit code.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/sirupsen/logrus"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/backend"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/docker"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

// Stamped at build time by make build / make release (-ldflags -X).
var (
	version = "dev"
	commit  = "unknown"
	date    = "unknown"
)

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "--version" || os.Args[1] == "version") {
		fmt.Printf("drone-sauce-connect %s (commit %s, built %s)\n", version, commit, date)
		return
	}
	if len(os.Args) > 1 && os.Args[1] == docker.ReapCommand {
		os.Exit(reap(os.Args[2:]))
	}
	os.Exit(run())
}

// signalled returns a context cancelled by SIGTERM or SIGINT, which it
// records as the cause.
func signalled() (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		s := <-sigs
		cancel(&plugin.SignalError{Signal: s})
	}()
	return ctx, func() { cancel(nil) }
}

// reap runs the watchdog the plugin starts beside its tunnel.
func reap(args []string) int {
	ctx, cancel := signalled()
	defer cancel()
	// The watchdog learns SC's secrets when it tears SC down.
	masker := plugin.NewMasker()
	stdout, stderr := masker.Writer(os.Stdout), masker.Writer(os.Stderr)
	defer stdout.Flush()
	defer stderr.Flush()
	report := func(err error) int {
		fmt.Fprintf(stderr, "drone-sauce-connect reap: %v\n", err)
		return plugin.ExitCode(err)
	}
	a, err := docker.ParseWatchdogArgs(args)
	if err != nil {
		return report(err)
	}
	log := logrus.New()
	log.SetOutput(stdout)
	log.SetFormatter(plugin.LogFormatter(plugin.LogFormat(a.LogFormat)))
	eng, err := engine.NewEnv(ctx)
	if err != nil {
		return report(docker.EngineHint(err, plugin.Pipeline{}))
	}
	defer eng.Close()
	eng.OnRetry = docker.RetryWarning(log)
	if err := docker.Reap(ctx, a, eng, log, masker); err != nil {
		return report(err)
	}
	return plugin.ExitOK
}

func run() int {
	ctx, cancel := signalled()
	defer cancel()

	settings, err := plugin.LoadSettings()
	masker := plugin.NewMasker(settings.AccessKey.Value(), settings.RegistryPassword.Value())
	stdout, stderr := masker.Writer(os.Stdout), masker.Writer(os.Stderr)
	defer stdout.Flush()
	defer stderr.Flush()
	report := func(err error) int {
		fmt.Fprintf(stderr, "drone-sauce-connect: %v\n", err)
		return plugin.ExitCode(err)
	}
	if err != nil {
		return report(err)
	}
	pipeline, err := plugin.LoadPipeline()
	if err != nil {
		return report(err)
	}
	pipeline.PostStep = filepath.Base(os.Args[0]) == plugin.PostName
	hostname, _ := os.Hostname()
	cfg, err := plugin.Settings.Config(settings, pipeline, hostname, randomHex())
	// Mask exactly what is handed on (trimmed), and the secrets in env,
	// sc_args and the proxies' URLs, before anything can be printed.
	masker.Add(cfg.Secrets()...)
	if err != nil {
		return report(err)
	}

	log := logrus.New()
	log.SetOutput(stdout)
	log.SetFormatter(plugin.LogFormatter(cfg.LogFormat))
	if cfg.Debug {
		log.SetLevel(logrus.DebugLevel)
	}
	log.Debugf("drone-sauce-connect %s (commit %s, built %s)", version, commit, date)

	if err := backend.Act(ctx, cfg, backend.Real, plugin.Options{Out: stdout, Masker: masker, Log: log}); err != nil {
		return report(err)
	}
	return plugin.ExitOK
}

func randomHex() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
