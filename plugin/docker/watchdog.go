package docker

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

// guard is what a watchdog guards SC by: the anchor, whose removal means
// the pipeline ended, and the runner's networks SC joined.
type guard struct {
	Anchor   string
	Networks []string
}

// guardOf decides the watchdog's anchor from the plugin's own container
// (proven, see whereAmI) and the container whose network namespace it uses:
//   - in a borrowed namespace (act runs an action with network_mode
//     container:<job>), the namespace's owner, which lives as long as the job;
//   - on GitHub Actions none: the runner removes an action's container
//     right after its step (the hosted runner with --rm, act explicitly), so
//     the post step and max_lifetime end the tunnel;
//   - a --rm container, or the host, has none either;
//   - else the plugin's own step container, which Drone and Harness keep
//     until the stage ends.
//
// The networks are those SC joined because the owner is on them.
func guardOf(c plugin.Config, self, owner *engine.Container, pl placement) guard {
	var g guard
	switch {
	case self == nil:
	case owner != nil && owner.ID != self.ID:
		g.Anchor = owner.ID
	case c.Pipeline.Platform() == plugin.PlatformGitHub, self.AutoRemove:
	default:
		g.Anchor = self.ID
	}
	if owner != nil {
		for _, a := range pl.Networks {
			if slices.Contains(userNetworks(owner), a.Network) {
				g.Networks = append(g.Networks, a.Network)
			}
		}
	}
	return g
}

// watchdogCerts is where the watchdog finds the engine's TLS files.
const watchdogCerts = "/run/drone-sauce-connect/docker-certs"

// watchdogSpec is the watchdog container: the plugin's own image (by
// content ID, so it is this very plugin whatever the tag) running its reap
// command, removed by the engine when it exits, reaching the engine as the
// plugin does: through the socket the plugin has (at the same path), on the
// engine's default bridge (for Sauce Labs' REST API, see Backstop); or over
// TCP on the plugin's network, with the
// plugin's TLS files copied in before it starts (the private key 0400, never
// in its environment, labels or command line). It is pure and golden-tested.
func watchdogSpec(c plugin.Config, self engine.Container, g guard, scID string, deadline, now time.Time, access engine.Access) (engine.ContainerSpec, bool) {
	args := WatchdogArgs{Tunnel: c.TunnelName, Target: scID, Anchor: g.Anchor, Deadline: deadline, Networks: g.Networks,
		StopTimeout: c.StopTimeout, LogFormat: string(c.LogFormat), RESTURL: c.RESTURL}
	s := engine.ContainerSpec{
		// Its own name per SC container: a watchdog of an earlier attempt may
		// still be exiting, or left created after a kill.
		Name:       c.ContainerName + "-watchdog-" + plugin.Short(scID),
		Image:      cmp.Or(self.ImageID, self.Image),
		Cmd:        args.Flags(),
		AutoRemove: true,
	}
	labels := plugin.Labels(c, now, deadline.Add(c.StopTimeout+plugin.CleanupTimeout), platformLabels(&self))
	labels[plugin.LabelRole] = plugin.RoleWatchdog
	s.Labels = labels
	s.Env = []engine.EnvVar{{Name: "DOCKER_HOST", Value: access.Host}}
	if sock, ok := strings.CutPrefix(access.Host, "unix://"); ok {
		src, found := self.Mounts[sock]
		if !found {
			return s, false
		}
		s.Mounts = []engine.Mount{{Source: src, Target: sock}}
		// The engine's default bridge: egress to Sauce Labs' REST API, for
		// the backstop, and no runner's network.
		s.NetworkMode = "bridge"
		return s, true
	}
	// A tcp:// engine is reached over the network the plugin uses.
	s.NetworkMode = self.NetworkMode
	if t := access.TLS; t != nil {
		s.Env = append(s.Env, engine.EnvVar{Name: "DOCKER_CERT_PATH", Value: watchdogCerts})
		if t.Verify {
			s.Env = append(s.Env, engine.EnvVar{Name: "DOCKER_TLS_VERIFY", Value: "1"})
		}
		for i, content := range [][]byte{t.CA, t.Cert, t.Key} {
			mode := int64(0o444)
			if engine.TLSFileNames[i] == "key.pem" {
				mode = 0o400
			}
			s.Files = append(s.Files, engine.File{Path: watchdogCerts + "/" + engine.TLSFileNames[i], Mode: mode, Content: content})
		}
	}
	return s, true
}
