package plugin

import (
	"cmp"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

// LabelRole tells the tunnel's container from its watchdog's.
const LabelRole = LabelPrefix + "role"

// The roles.
const (
	RoleTunnel   = "tunnel"
	RoleWatchdog = "watchdog"
)

// WatchdogArgs tell a watchdog (action reap) what to watch. The plugin sets
// them on the watchdog container; they are not user settings.
type WatchdogArgs struct {
	// Anchor is the container whose removal ends the tunnel ("" when there
	// is no anchor: then only the deadline counts).
	Anchor string `envconfig:"DSC_WATCHDOG_ANCHOR"`
	// Target is the SC container.
	Target string `envconfig:"DSC_WATCHDOG_TARGET"`
	// Deadline is when the tunnel expires, in Unix seconds.
	Deadline string `envconfig:"DSC_WATCHDOG_DEADLINE"`
	// Networks are the runner's networks SC joined (comma-separated): SC
	// leaves them first at teardown, and the watchdog removes the ones
	// its runner left behind.
	Networks string `envconfig:"DSC_WATCHDOG_NETWORKS"`
}

// platformLabel matches the labels by which runners find what to tear down:
// Drone's io.drone.* (io.drone.expires is what drone-gc honours), Harness's
// stage label, and GitHub's per-runner instance label (six hex digits).
var platformLabel = regexp.MustCompile(`^(io\.drone(\..+)?|internal_stage_label|[0-9a-f]{6})$`)

// PlatformLabels picks the runner's teardown labels from the plugin's own
// container, to copy onto what the plugin creates.
func PlatformLabels(self *engine.Container) map[string]string {
	out := map[string]string{}
	if self == nil {
		return out
	}
	for k, v := range self.Labels {
		if platformLabel.MatchString(k) {
			out[k] = v
		}
	}
	return out
}

// Deadline is when the tunnel expires: max_lifetime from now when set, else
// the runner's own expiry (Drone's io.drone.expires, or io.drone.ttl), else
// the default lifetime.
func Deadline(c Config, self *engine.Container, now time.Time) time.Time {
	if c.MaxLifetime > 0 {
		return now.Add(c.MaxLifetime)
	}
	if self != nil {
		if s, err := strconv.ParseInt(self.Labels["io.drone.expires"], 10, 64); err == nil && s > now.Unix() {
			return time.Unix(s, 0)
		}
		if d, err := time.ParseDuration(self.Labels["io.drone.ttl"]); err == nil && d > 0 {
			return now.Add(d)
		}
	}
	return now.Add(defaultLifetime)
}

// Guard is what a watchdog guards SC by: the anchor, whose removal means
// the pipeline ended, and the runner's networks SC joined.
type Guard struct {
	Anchor   string
	Networks []string
}

// GuardOf decides the watchdog's anchor from the plugin's own container
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
func GuardOf(c Config, self, owner *engine.Container, pl Placement) Guard {
	var g Guard
	switch {
	case self == nil:
	case owner != nil && owner.ID != self.ID:
		g.Anchor = owner.ID
	case c.Pipeline.Platform() == PlatformGitHub, self.AutoRemove:
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

// WatchdogSpec is the watchdog container: the plugin's own image (by
// content ID, so it is this very plugin whatever the tag), in action reap,
// removed by the engine when it exits, with the Docker socket the plugin
// has and no network of its own. It is pure and golden-tested.
func WatchdogSpec(c Config, self engine.Container, g Guard, scID string, deadline, now time.Time, dockerHost string) (engine.ContainerSpec, bool) {
	s := engine.ContainerSpec{
		Name:       c.ContainerName + "-watchdog",
		Image:      cmp.Or(self.ImageID, self.Image),
		AutoRemove: true,
		Env: []engine.EnvVar{
			{Name: "PLUGIN_ACTION", Value: "reap"},
			{Name: "PLUGIN_TUNNEL_NAME", Value: c.TunnelName},
			{Name: "PLUGIN_CONTAINER_NAME", Value: c.ContainerName},
			{Name: "PLUGIN_STOP_TIMEOUT", Value: c.StopTimeout.String()},
			{Name: "PLUGIN_LOG_FORMAT", Value: c.LogFormat},
			{Name: "DSC_WATCHDOG_ANCHOR", Value: g.Anchor},
			{Name: "DSC_WATCHDOG_TARGET", Value: scID},
			{Name: "DSC_WATCHDOG_DEADLINE", Value: strconv.FormatInt(deadline.Unix(), 10)},
		},
	}
	if len(g.Networks) > 0 {
		s.Env = append(s.Env, engine.EnvVar{Name: "DSC_WATCHDOG_NETWORKS", Value: strings.Join(g.Networks, ",")})
	}
	labels := Labels(c, now, deadline.Add(c.StopTimeout+cleanupTimeout), PlatformLabels(&self))
	labels[LabelRole] = RoleWatchdog
	s.Labels = labels
	if sock, ok := strings.CutPrefix(dockerHost, "unix://"); ok {
		src, found := self.Mounts[sock]
		if !found {
			return s, false
		}
		s.Mounts = []engine.Mount{{Source: src, Target: sock}}
		s.NetworkMode = "none"
	} else {
		// A tcp:// engine is reached over the network the plugin uses.
		s.Env = append(s.Env, engine.EnvVar{Name: "DOCKER_HOST", Value: dockerHost})
		s.NetworkMode = self.NetworkMode
	}
	return s, true
}

// mergeLabels returns a copy of base with extra added where base has no value.
func mergeLabels(base, extra map[string]string) map[string]string {
	out := maps.Clone(base)
	if out == nil {
		out = map[string]string{}
	}
	for k, v := range extra {
		if _, ok := out[k]; !ok {
			out[k] = v
		}
	}
	return out
}
