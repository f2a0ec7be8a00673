package docker

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

// netnsOwner follows a borrowed network namespace (network_mode
// container:<id>, as act runs actions) to the container that owns it.
func netnsOwner(ctx context.Context, eng Engine, self *engine.Container) (*engine.Container, error) {
	if self == nil {
		return nil, nil
	}
	for range 4 {
		id, ok := strings.CutPrefix(self.NetworkMode, "container:")
		if !ok {
			return self, nil
		}
		owner, err := eng.InspectContainer(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("inspect the container whose network the plugin shares: %w", err)
		}
		self = &owner
	}
	return self, nil
}

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

// Place decides how SC attaches: the networks it joins (with the alias on
// user-defined ones) and whether its API is published on the host.
// owner is the container whose network stack the plugin uses, nil on the host.
func Place(c plugin.Config, owner *engine.Container) Placement {
	var pl Placement
	attach := func(network string) {
		pl.Networks = append(pl.Networks, engine.NetworkAttachment{Network: network, Aliases: []string{c.NetworkAlias}})
	}
	var userNets []string
	pl.APIPort = c.APIPort
	switch {
	case c.NetworkMode == plugin.NetworkHost || runnerHostJob(c, owner):
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

// ResolveEndpoints works out SC's API addresses from its inspected state.
// owner is the container whose network stack the plugin uses (nil on the
// host); dockerHost is the engine address (a tcp:// engine is probed there).
func ResolveEndpoints(c plugin.Config, owner *engine.Container, sc engine.Container, dockerHost string) plugin.Endpoints {
	port := strconv.Itoa(c.APIPort)
	var ep plugin.Endpoints
	if binds := sc.HostPorts[c.APIPort]; len(binds) > 0 {
		ip := binds[0].IP
		if ip == "" || ip == "0.0.0.0" || ip == "::" {
			ip = "127.0.0.1"
		}
		ep.Host = "http://" + net.JoinHostPort(ip, strconv.Itoa(binds[0].Port))
	}
	if sc.NetworkMode == "host" {
		ep.Host = "http://" + net.JoinHostPort(c.APIBind, listenPort(sc, port))
		if c.APIBind == "0.0.0.0" || c.APIBind == "::" {
			ep.Host = "http://127.0.0.1:" + listenPort(sc, port)
		}
	}
	for _, n := range sortedNetworks(sc) {
		e := sc.Networks[n]
		if len(e.Aliases) > 0 && n != "bridge" && slices.Contains(e.Aliases, c.NetworkAlias) {
			ep.Container = "http://" + net.JoinHostPort(c.NetworkAlias, port)
			break
		}
		if ep.Container == "" && e.IP != "" {
			ep.Container = "http://" + net.JoinHostPort(e.IP, port)
		}
	}

	// How the plugin itself gets there.
	if u, err := url.Parse(dockerHost); err == nil && u.Scheme == "tcp" && ep.Host != "" {
		_, hp, _ := net.SplitHostPort(strings.TrimPrefix(ep.Host, "http://"))
		ep.Probe = "http://" + net.JoinHostPort(u.Hostname(), hp)
		if owner == nil {
			// The plugin is no container of that engine (a dind service, a
			// remote engine): later steps reach SC where the plugin does, at
			// the engine's host and the published port (docker:8032, or
			// localhost:8032 where the engine shares the build pod's
			// network), never at SC's address on that engine's networks.
			ep.Host, ep.Container = ep.Probe, ep.Probe
		}
		return ep
	}
	if onHostNetwork(owner) {
		switch {
		case ep.Host != "":
			ep.Probe = ep.Host
		default:
			ep.Probe = "http://" + net.JoinHostPort(firstIP(sc), port)
		}
		return ep
	}
	for _, n := range sortedNetworks(sc) {
		if _, shared := owner.Networks[n]; shared && sc.Networks[n].IP != "" {
			ep.Probe = "http://" + net.JoinHostPort(sc.Networks[n].IP, port)
			return ep
		}
	}
	if sc.NetworkMode == "host" {
		// The plugin's gateway is a host address; SC answers there when it
		// listens on every host address (api_bind 0.0.0.0), else the
		// engine's health check tells readiness.
		for _, n := range sortedNetworks(*owner) {
			if gw := owner.Networks[n].Gateway; gw != "" {
				ep.Probe = "http://" + net.JoinHostPort(gw, listenPort(sc, port))
				return ep
			}
		}
	}
	ep.Probe = "http://" + net.JoinHostPort(firstIP(sc), port)
	return ep
}

// listenPort is the port SC's API listens on, from its SAUCE_API_ADDRESS.
func listenPort(sc engine.Container, def string) string {
	for _, kv := range sc.Env {
		if addr, ok := strings.CutPrefix(kv, "SAUCE_API_ADDRESS="); ok {
			if _, port, err := net.SplitHostPort(addr); err == nil {
				return port
			}
		}
	}
	return def
}

func sortedNetworks(c engine.Container) []string {
	return slices.Sorted(maps.Keys(c.Networks))
}

func firstIP(c engine.Container) string {
	for _, n := range sortedNetworks(c) {
		if ip := c.Networks[n].IP; ip != "" {
			return ip
		}
	}
	return "127.0.0.1"
}

// PublishForRemoteEngine widens the API's publish address on an engine on
// another host (DOCKER_HOST tcp:// to a host other than this one's
// loopback, the plugin no container of it): there 127.0.0.1 is the engine
// host's own, which no step reaches, so the API is published on every
// address of that host, as a dind service's ports are. It returns the
// engine's host when it changed pl.
func PublishForRemoteEngine(pl *Placement, a engine.Access, owner *engine.Container) (string, bool) {
	host, remote := a.Remote()
	if !remote || owner != nil || pl.Publish == nil {
		return "", false
	}
	if ip, err := netip.ParseAddr(pl.Publish.IP); err != nil || !ip.IsLoopback() {
		return "", false
	}
	pl.Publish.IP = "0.0.0.0"
	return host, true
}
