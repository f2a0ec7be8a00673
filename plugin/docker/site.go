package docker

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

// site is where the plugin runs, as the engine sees it: everything the
// placement of SC needs, read once per start (locate).
type site struct {
	// Self is the plugin's own container, proven by the engine (nil on
	// the host, or when nothing is proven); Owner the container whose
	// network stack it uses (act borrows the job container's).
	Self  *engine.Container `json:"self,omitempty"`
	Owner *engine.Container `json:"owner,omitempty"`
	// Reach is how the plugin reaches the engine.
	Reach string `json:"reach"`
	// FreePort is a port free on api_bind here, for an SC in the host's
	// network with api_host_port 0 (0 when none is needed).
	FreePort int `json:"free_port,omitempty"`
	// Expires is when the tunnel expires; Labels are the runner's teardown
	// labels, to copy onto what the plugin creates.
	Expires time.Time         `json:"expires"`
	Labels  map[string]string `json:"labels"`
}

// locate works out the site: the plugin's own container among all (the
// start's one listing), the owner of its network stack, when the tunnel
// expires and the runner's labels, and a free host port where the
// placement may need one.
func locate(ctx context.Context, eng Engine, c plugin.Config, access engine.Access, all []engine.Summary, here procSelf, log *logrus.Entry, now time.Time) (site, error) {
	self, err := whereAmI(ctx, eng, here, all, log)
	if err != nil {
		return site{}, err
	}
	owner, err := netnsOwner(ctx, eng, self)
	if err != nil {
		return site{}, err
	}
	st := site{Self: self, Owner: owner, Reach: access.Host, Expires: expiry(c, self, now), Labels: platformLabels(self)}
	if c.APIHostPort == 0 && hostMode(c, owner) && st.local() {
		// api_host_port 0 in the host's network: pick a free port here.
		if st.FreePort, err = freeHostPort(c.APIBind); err != nil {
			return site{}, err
		}
	}
	return st, nil
}

// local reports whether the plugin shares the network stack of the
// engine's host: on the host, or in a host-network container, of an
// engine reached through its socket.
func (st site) local() bool {
	return onHostNetwork(st.Owner) && !strings.HasPrefix(st.Reach, "tcp://")
}

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

// platformLabel matches the labels by which runners find what to tear down:
// Drone's io.drone.* (io.drone.expires is what drone-gc honours), Harness's
// stage label, and GitHub's per-runner instance label (six hex digits).
var platformLabel = regexp.MustCompile(`^(io\.drone(\..+)?|internal_stage_label|[0-9a-f]{6})$`)

// platformLabels picks the runner's teardown labels from the plugin's own
// container, to copy onto what the plugin creates.
func platformLabels(self *engine.Container) map[string]string {
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

// expiry is when the tunnel expires: max_lifetime from now when set, else
// the runner's own expiry (Drone's io.drone.expires, or io.drone.ttl), else
// the default lifetime.
func expiry(c plugin.Config, self *engine.Container, now time.Time) time.Time {
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
	return plugin.Lifetime(c, now)
}

// freeHostPort returns a port free on addr now.
func freeHostPort(addr string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		return 0, fmt.Errorf("pick a free port for SC's API: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
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

// hostMode reports whether SC runs in the host's network.
func hostMode(c plugin.Config, owner *engine.Container) bool {
	return c.NetworkMode == plugin.NetworkHost || runnerHostJob(c, owner)
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
