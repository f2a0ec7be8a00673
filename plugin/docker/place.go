package docker

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

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

// checkHostPort fails early, naming the setting, when the fixed host port
// the API is to be published on is already taken (by a container among
// all, or on this host). The engine itself does not always refuse: two
// containers may bind the same address.
func checkHostPort(c plugin.Config, pl placement, st site, all []engine.Summary) error {
	local := st.local()
	if pl.NetworkMode == "host" && local {
		if !portFree(c.APIBind, pl.APIPort) {
			return fmt.Errorf("port %d (%s) on this host is already in use, and SC's API listens there in the host's network; set api_host_port to a free port, or 0 to pick one", pl.APIPort, c.APIBind)
		}
		return nil
	}
	if pl.Publish == nil || pl.Publish.Port == 0 {
		return nil
	}
	port, ip := pl.Publish.Port, pl.Publish.IP
	taken := fmt.Errorf("host port %d (%s) is already in use; set api_host_port to a free port, or 0 to pick one", port, ip)
	for _, s := range all {
		for _, hp := range s.Ports {
			if hp.Port == port && (hp.IP == ip || hp.IP == "" || hp.IP == "0.0.0.0" || ip == "0.0.0.0") {
				return fmt.Errorf("%w by container %s", taken, strings.Join(s.Names, ","))
			}
		}
	}
	if local && !portFree(ip, port) {
		return taken
	}
	return nil
}

// portFree reports whether port on addr can be listened on now.
func portFree(addr string, port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort(addr, strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}
