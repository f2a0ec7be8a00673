package docker

import (
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

// resolveEndpoints works out SC's API addresses from its inspected state.
// owner is the container whose network stack the plugin uses (nil on the
// host); dockerHost is the engine address (a tcp:// engine is probed there).
func resolveEndpoints(c plugin.Config, owner *engine.Container, sc engine.Container, dockerHost string) plugin.Endpoints {
	ep := plugin.Endpoints{Host: hostEndpoint(c, sc), Container: containerEndpoint(c, sc)}
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
	ep.Probe = probeEndpoint(c, owner, sc, ep.Host)
	return ep
}

// hostEndpoint is SC's API on the host: its published port, or, in the
// host's network, api_bind ("" when it has neither).
func hostEndpoint(c plugin.Config, sc engine.Container) string {
	port := strconv.Itoa(c.APIPort)
	if sc.NetworkMode == "host" {
		if c.APIBind == "0.0.0.0" || c.APIBind == "::" {
			return "http://127.0.0.1:" + listenPort(sc, port)
		}
		return "http://" + net.JoinHostPort(c.APIBind, listenPort(sc, port))
	}
	if binds := sc.HostPorts[c.APIPort]; len(binds) > 0 {
		ip := binds[0].IP
		if ip == "" || ip == "0.0.0.0" || ip == "::" {
			ip = "127.0.0.1"
		}
		return "http://" + net.JoinHostPort(ip, strconv.Itoa(binds[0].Port))
	}
	return ""
}

// containerEndpoint is SC's API for container steps: its alias on a
// user-defined network, else its first address.
func containerEndpoint(c plugin.Config, sc engine.Container) string {
	port := strconv.Itoa(c.APIPort)
	out := ""
	for _, n := range sortedNetworks(sc) {
		e := sc.Networks[n]
		if len(e.Aliases) > 0 && n != "bridge" && slices.Contains(e.Aliases, c.NetworkAlias) {
			return "http://" + net.JoinHostPort(c.NetworkAlias, port)
		}
		if out == "" && e.IP != "" {
			out = "http://" + net.JoinHostPort(e.IP, port)
		}
	}
	return out
}

// probeEndpoint is where the plugin itself reaches SC's API from the
// owner's network stack (host is SC's API on the host, if any).
func probeEndpoint(c plugin.Config, owner *engine.Container, sc engine.Container, host string) string {
	port := strconv.Itoa(c.APIPort)
	if onHostNetwork(owner) {
		if host != "" {
			return host
		}
		return "http://" + net.JoinHostPort(firstIP(sc), port)
	}
	for _, n := range sortedNetworks(sc) {
		if _, shared := owner.Networks[n]; shared && sc.Networks[n].IP != "" {
			return "http://" + net.JoinHostPort(sc.Networks[n].IP, port)
		}
	}
	if sc.NetworkMode == "host" {
		// The plugin's gateway is a host address; SC answers there when it
		// listens on every host address (api_bind 0.0.0.0), else the
		// engine's health check tells readiness.
		for _, n := range sortedNetworks(*owner) {
			if gw := owner.Networks[n].Gateway; gw != "" {
				return "http://" + net.JoinHostPort(gw, listenPort(sc, port))
			}
		}
	}
	return "http://" + net.JoinHostPort(firstIP(sc), port)
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
