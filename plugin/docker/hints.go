package docker

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/sirupsen/logrus"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

// RetryWarning is the engine's OnRetry for the plugin and the watchdog: a
// transient engine failure is worth one warning line, not a failed build.
func RetryWarning(log logrus.FieldLogger) func(engine.Retry) {
	return func(r engine.Retry) {
		log.Warnf("docker engine: %s failed (%v); retrying in %s", r.Op, r.Err, r.Wait)
	}
}

// socketPath is the unix socket DOCKER_HOST names, or the default.
func socketPath() string {
	if p, ok := strings.CutPrefix(os.Getenv("DOCKER_HOST"), "unix://"); ok {
		return p
	}
	return "/var/run/docker.sock"
}

// socketDenied says who owns the socket, who the step runs as, and how to
// run the step so that it may use the socket, per platform.
func socketDenied(path string) string {
	owner := "its owner"
	if fi, err := os.Stat(path); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			owner = fmt.Sprintf("uid %d and group %d", st.Uid, st.Gid)
		}
	}
	groups, _ := os.Getgroups()
	return fmt.Sprintf("the socket %s is mounted, but it allows %s, and this step runs as uid %d with groups %v: run the step as root or in that group "+
		"(Drone: remove user: from the step, or set it to root; Harness: runAsUser 0, or add the group; GitHub Actions: a container action runs as root unless its job sets options: --user)",
		path, owner, os.Getuid(), groups)
}

// EngineHint explains how to give the plugin a Docker engine, for errors
// from connecting to one.
func EngineHint(err error, p plugin.Pipeline) error {
	switch {
	case errors.Is(err, engine.ErrAccess):
		return &plugin.SettingsError{Problems: []string{err.Error()}}
	case errors.Is(err, engine.ErrDenied):
		return &plugin.EngineError{Err: fmt.Errorf("%w; %s", err, socketDenied(socketPath()))}
	case errors.Is(err, engine.ErrTooOld):
		return &plugin.EngineError{Err: err}
	case !errors.Is(err, engine.ErrUnreachable):
		return err
	}
	hint := "mount the Docker socket into the step: Drone: a host volume /var/run/docker.sock (trusted repository); " +
		"Harness Cloud and VM pools mount it already; GitHub Actions: use a Linux runner; or set DOCKER_HOST"
	if h := os.Getenv("DOCKER_HOST"); strings.HasPrefix(h, "tcp://") {
		hint = "check that an engine listens at DOCKER_HOST=" + h + " and that this step reaches it (a dind service: its name, e.g. tcp://docker:2376); " +
			"an engine with TLS (port 2376) needs DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH with ca.pem, cert.pem and key.pem"
	}
	if p.KubernetesServiceHost != "" {
		hint = "this step runs on Kubernetes, where there is no Docker socket: set backend to kubernetes (or auto) and grant the build pod's service account the Role in docs/kubernetes.md"
	}
	return &plugin.EngineError{Err: fmt.Errorf("%w; %s", err, hint)}
}
