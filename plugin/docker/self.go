package docker

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

var (
	mountinfoID = regexp.MustCompile(`/containers/([0-9a-f]{64})/`)
	cgroupID    = regexp.MustCompile(`(?:docker[-/]|/containers/)([0-9a-f]{64})`)
)

// containerIDCandidates guesses the plugin's own container ID from the
// contents of /proc/self/mountinfo (the /etc/hostname bind mount names the
// container's directory), /proc/self/cgroup (cgroup v1) and the host name
// (Docker's default hostname is the short ID). These are guesses only: in a
// borrowed network namespace (act runs actions with network_mode
// container:<job>) the hostname and its bind mount belong to the
// namespace's owner. whereAmI proves a candidate before taking it.
func containerIDCandidates(mountinfo, cgroup, hostname string) []string {
	var out []string
	for _, line := range strings.Split(mountinfo, "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && f[4] == "/etc/hostname" {
			if m := mountinfoID.FindStringSubmatch(f[3]); m != nil {
				out = append(out, m[1])
			}
		}
	}
	if m := cgroupID.FindStringSubmatch(cgroup); m != nil {
		out = append(out, m[1])
	}
	if len(hostname) == 12 && strings.Trim(hostname, "0123456789abcdef") == "" {
		out = append(out, hostname)
	}
	return out
}

// rootUpperDir returns the host directory of the writable layer this
// process's root is mounted from (overlay storage), or "".
func rootUpperDir(mountinfo string) string {
	for _, line := range strings.Split(mountinfo, "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || f[4] != "/" || len(g) < 3 || g[0] != "overlay" {
			continue
		}
		for _, opt := range strings.Split(g[2], ",") {
			if dir, ok := strings.CutPrefix(opt, "upperdir="); ok {
				return dir
			}
		}
	}
	return ""
}

// maxSelfScan bounds how many running containers are checked when no guess
// is proven; the plugin's own container is among the newest.
const maxSelfScan = 64

// selfProof is what tells the plugin's own container from any other: a
// marker file only this process wrote, or the host directory of its
// writable layer.
type selfProof struct {
	marker   string
	upperDir string
}

// proves reports whether the engine confirms that container id is this
// process's container.
func (p selfProof) proves(ctx context.Context, eng Engine, c engine.Container) (bool, error) {
	if p.upperDir != "" && c.UpperDir == p.upperDir {
		return true, nil
	}
	if p.marker == "" {
		return false, nil
	}
	return eng.PathExists(ctx, c.ID, p.marker)
}

// whereAmI returns the plugin's own container, proven by the engine (see
// selfProof), or nil when the plugin runs on the host, talks to an engine
// that does not hold its container, or nothing could be proven. all are
// the engine's containers.
func whereAmI(ctx context.Context, eng Engine, here procSelf, all []engine.Summary, log *logrus.Entry) (*engine.Container, error) {
	guesses, upper := containerIDCandidates(here.mountinfo, here.cgroup, here.hostname), rootUpperDir(here.mountinfo)
	if len(guesses) == 0 && upper == "" {
		// Nothing says this is a container (/.dockerenv does not either:
		// machine images built from container images keep it).
		return nil, nil
	}
	marker, remove := here.marker()
	defer remove()
	return findSelf(ctx, eng, guesses, all, selfProof{marker: marker, upperDir: upper}, log)
}

// findSelf tries the guesses first, then the running containers among all,
// newest first, and takes the first the proof holds for.
func findSelf(ctx context.Context, eng Engine, guesses []string, all []engine.Summary, proof selfProof, log *logrus.Entry) (*engine.Container, error) {
	if proof == (selfProof{}) {
		log.Debug("cannot prove which container the plugin runs in (no writable directory for a marker, no overlay root); running without an anchor: " + noWatchdogMeans)
		return nil, nil
	}
	tried := map[string]bool{}
	check := func(id string) (*engine.Container, error) {
		if tried[id] {
			return nil, nil
		}
		tried[id] = true
		c, err := eng.InspectContainer(ctx, id)
		if engine.IsNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("inspect own container: %w", err)
		}
		tried[c.ID] = true
		// A container on its way out may refuse the look: not proven.
		if ok, err := proof.proves(ctx, eng, c); !ok {
			if err != nil {
				log.WithError(err).Debugf("container %s: not proven to be the plugin's", engine.ShortID(c.ID))
			}
			return nil, nil
		}
		return &c, nil
	}
	for _, id := range guesses {
		if c, err := check(id); c != nil || err != nil {
			return c, err
		}
	}
	n := 0
	for _, s := range all {
		if s.State != "running" || n == maxSelfScan {
			continue
		}
		n++
		if c, err := check(s.ID); c != nil || err != nil {
			return c, err
		}
	}
	log.Debugf("no container is proven to be the plugin's (%d guesses, %d running containers checked); running without an anchor: %s", len(guesses), n, noWatchdogMeans)
	return nil, nil
}
