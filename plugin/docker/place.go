package docker

import (
	"cmp"
	"net/netip"
	"slices"
	"sort"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

// userNetworks lists the networks of c that take DNS aliases: all but the
// default bridge, host and none, sorted for a stable order.
func userNetworks(c *engine.Container) []string {
	var out []string
	for name := range c.Networks {
		if name != "bridge" && name != "host" && name != "none" {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// onHostNetwork reports whether the plugin shares the host's network stack:
// it runs on the host, or in a container in host network mode.
func onHostNetwork(owner *engine.Container) bool {
	return owner == nil || owner.NetworkMode == "host"
}

// placement is how the SC container attaches to the world, decided from
// the site (place).
type placement struct {
	// NetworkMode is "host", "container:<id>" or empty.
	NetworkMode string
	// Networks to join, the first at create.
	Networks []engine.NetworkAttachment
	// Publish binds the API port on the host when set.
	Publish *engine.HostPort
	// APIPort is the port SC's API listens on: api_port in SC's own network
	// stack, a host port in the host's.
	APIPort int
	// Deadline is when the tunnel expires (the expires label).
	Deadline time.Time
	// Labels are the runner's teardown labels to copy (see platformLabels).
	Labels map[string]string
	// ImageUser is the user SC's image runs as (its USER): SC's config
	// file is made readable by that user alone when it is numeric.
	ImageUser string
	// RemoteHost is the engine's host when it is another host than the
	// step's, where the API is published on every address.
	RemoteHost string
}

// place decides where SC goes, from the site and SC's image: pure.
func place(c plugin.Config, st site, img engine.Image) placement {
	pl := attachments(c, st.Owner)
	if host, ok := publishForRemoteEngine(&pl, st.Reach, st.Owner); ok {
		pl.RemoteHost = host
	}
	if pl.NetworkMode == "host" && st.FreePort != 0 {
		pl.APIPort = st.FreePort
	}
	pl.Deadline, pl.Labels, pl.ImageUser = st.Expires, st.Labels, img.User
	return pl
}

// hostMode reports whether SC runs in the host's network.
func hostMode(c plugin.Config, owner *engine.Container) bool {
	return c.NetworkMode == plugin.NetworkHost || runnerHostJob(c, owner)
}

// attachments decides how SC attaches: the networks it joins (with the
// alias on user-defined ones) and whether its API is published on the
// host. owner is the container whose network stack the plugin uses, nil
// on the host.
func attachments(c plugin.Config, owner *engine.Container) placement {
	var pl placement
	attach := func(network string) {
		pl.Networks = append(pl.Networks, engine.NetworkAttachment{Network: network, Aliases: []string{c.NetworkAlias}})
	}
	var userNets []string
	pl.APIPort = c.APIPort
	switch {
	case hostMode(c, owner):
		pl.NetworkMode = "host"
		// In the host's network the API listens on a host port itself.
		pl.APIPort = cmp.Or(c.APIHostPort, c.APIPort)
	case c.NetworkMode == plugin.NetworkBridge:
	case !onHostNetwork(owner):
		userNets = userNetworks(owner)
		for _, n := range userNets {
			attach(n)
		}
	}
	if c.Network != "" && !slices.Contains(userNets, c.Network) {
		attach(c.Network)
		userNets = append(userNets, c.Network)
	}

	publish := false
	switch c.Publish {
	case plugin.PublishAlways:
		publish = true
	case plugin.PublishAuto:
		// Later steps may run on the host, or no network lets them use the alias.
		p := c.Pipeline.Platform()
		publish = onHostNetwork(owner) || len(userNets) == 0 || p == plugin.PlatformGitHub || p == plugin.PlatformHarness || p == plugin.PlatformLocal
	}
	if publish && pl.NetworkMode != "host" {
		pl.Publish = &engine.HostPort{IP: c.APIBind, Port: c.APIHostPort}
	}
	return pl
}

// runnerHostJob reports whether SC should share the runner's network by
// default: on GitHub Actions when the job runs on the runner itself (no job
// container, so no job network), as Sauce's own action runs SC there, so
// that an app the job serves on localhost is reached. Its API then listens
// on api_bind only.
func runnerHostJob(c plugin.Config, owner *engine.Container) bool {
	return c.NetworkMode == "" && c.Network == "" && c.Pipeline.Platform() == plugin.PlatformGitHub &&
		(owner == nil || len(userNetworks(owner)) == 0)
}

// publishForRemoteEngine widens the API's publish address on an engine on
// another host (DOCKER_HOST tcp:// to a host other than this one's
// loopback, the plugin no container of it): there 127.0.0.1 is the engine
// host's own, which no step reaches, so the API is published on every
// address of that host, as a dind service's ports are. It returns the
// engine's host when it changed pl.
func publishForRemoteEngine(pl *placement, reach string, owner *engine.Container) (string, bool) {
	host, remote := engine.Access{Host: reach}.Remote()
	if !remote || owner != nil || pl.Publish == nil {
		return "", false
	}
	if ip, err := netip.ParseAddr(pl.Publish.IP); err != nil || !ip.IsLoopback() {
		return "", false
	}
	pl.Publish.IP = "0.0.0.0"
	return host, true
}
