package plugin

import (
	"cmp"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

// The plugin's own labels, on everything it creates.
const (
	LabelManaged  = LabelPrefix + "managed"
	LabelTunnel   = LabelPrefix + "tunnel"
	LabelPipeline = LabelPrefix + "pipeline"
	LabelRunner   = LabelPrefix + "runner"
	LabelCreated  = LabelPrefix + "created"
	LabelExpires  = LabelPrefix + "expires"
	// LabelReadyBy is when the start that created SC gives up waiting for
	// it: until then, a concurrent start of the tunnel waits for it too.
	LabelReadyBy = LabelPrefix + "ready-by"
)

// configPath is where SC5 reads its config file in the image.
const configPath = "/etc/sauce-connect/sauce-connect.yaml"

// defaultLifetime is how long a tunnel may live before it counts as leaked.
const defaultLifetime = 3 * time.Hour

// Placement is how the SC container attaches to the world, decided by
// looking at where the plugin itself runs (see locate).
type Placement struct {
	// NetworkMode is "host", "container:<id>" or empty.
	NetworkMode string
	// Networks to join, the first at create.
	Networks []engine.NetworkAttachment
	// Publish binds the API port on the host when set.
	Publish *engine.HostPort
	// ConfigSource is the host path of config_file, when one is given.
	ConfigSource string
	// APIPort is the port SC's API listens on: api_port in SC's own network
	// stack, a host port in the host's.
	APIPort int
	// Deadline is when the tunnel expires (the expires label).
	Deadline time.Time
	// Labels are the runner's teardown labels to copy (see PlatformLabels).
	Labels map[string]string
}

// ContainerSpec turns the settings and the placement into the SC container.
// It is pure: the same inputs give the same spec, which is golden-tested.
func ContainerSpec(c Config, pl Placement, now time.Time) engine.ContainerSpec {
	labels := Labels(c, now, pl.Deadline, pl.Labels)
	labels[LabelRole] = RoleTunnel
	labels[LabelReadyBy] = strconv.FormatInt(now.Add(c.ReadyTimeout).Unix(), 10)
	env := []engine.EnvVar{
		{Name: "SAUCE_USERNAME", Value: c.Username},
		{Name: "SAUCE_ACCESS_KEY", Value: c.AccessKey.Value(), Secret: true},
		{Name: "SAUCE_REGION", Value: c.Region},
		{Name: "SAUCE_TUNNEL_NAME", Value: c.TunnelName},
		{Name: "SAUCE_API_ADDRESS", Value: apiAddress(c, pl)},
	}
	optional := []struct {
		name, value string
		secret      bool
	}{
		// With config_file only what is set explicitly, so that the file's
		// own values are not silently overridden (SC5: env over file).
		{"SAUCE_METADATA", map[bool]string{false: "runner=" + string(c.Pipeline.Platform())}[c.MetadataInFile], false},
		{"SAUCE_LOG_LEVEL", c.LogLevel, false},
		{"SAUCE_TUNNEL_POOL", boolEnv(c.TunnelPool), false},
		{"SAUCE_SHARED", c.Shared, false},
		// A proxy URL may carry a password (user:pass@host).
		{"SAUCE_PROXY", c.Proxy, strings.Contains(c.Proxy, "@")},
		{"SAUCE_PROXY_SAUCE", c.ProxySauce, strings.Contains(c.ProxySauce, "@")},
		{"SAUCE_PROXY_LOCALHOST", c.ProxyLocalhost, false},
		{"SAUCE_TUNNEL_DOMAINS", strings.Join(c.TunnelDomains, ","), false},
		{"SAUCE_DIRECT_DOMAINS", strings.Join(c.DirectDomains, ","), false},
		{"SAUCE_DENY_DOMAINS", strings.Join(c.DenyDomains, ","), false},
		{"SAUCE_TLS_PASSTHROUGH_DOMAINS", strings.Join(c.TLSPassthrough, ","), false},
	}
	for _, o := range optional {
		if o.value != "" {
			env = append(env, engine.EnvVar{Name: o.name, Value: o.value, Secret: o.secret})
		}
	}
	var mounts []engine.Mount
	if pl.ConfigSource != "" {
		env = append(env, engine.EnvVar{Name: "SAUCE_CONFIG_FILE", Value: configPath})
		mounts = append(mounts, engine.Mount{Source: pl.ConfigSource, Target: configPath, ReadOnly: true})
	}
	for _, k := range sortedKeys(c.Env) {
		env = append(env, engine.EnvVar{Name: k, Value: c.Env[k], Secret: len(secretsOfEnv([]string{k + "=" + c.Env[k]})) > 0})
	}
	return engine.ContainerSpec{
		Name:        c.ContainerName,
		Image:       c.Image,
		Cmd:         append([]string{"run"}, c.SCArgs...),
		Env:         env,
		Labels:      labels,
		Port:        c.APIPort,
		Publish:     pl.Publish,
		NetworkMode: pl.NetworkMode,
		Networks:    pl.Networks,
		Mounts:      mounts,
	}
}

// apiAddress is where SC's API listens: every address of its own network
// stack, or, in the host's (network_mode host), only api_bind, so that
// /configz and /metrics are not served to the host's network.
func apiAddress(c Config, pl Placement) string {
	if pl.NetworkMode == "host" {
		return net.JoinHostPort(c.APIBind, strconv.Itoa(cmp.Or(pl.APIPort, c.APIPort)))
	}
	return ":" + strconv.Itoa(c.APIPort)
}

// Labels are the labels of what the plugin creates: the runner's teardown
// labels, the user's, then the plugin's own (which nothing overrides).
func Labels(c Config, now, expires time.Time, platform map[string]string) map[string]string {
	l := mergeLabels(platform, c.Labels)
	pipeline := c.Pipeline.ID()
	if pipeline == "" {
		pipeline = "local"
	}
	l[LabelManaged] = "true"
	l[LabelTunnel] = c.TunnelName
	l[LabelPipeline] = sanitizeName(pipeline, 200)
	l[LabelRunner] = string(c.Pipeline.Platform())
	l[LabelCreated] = strconv.FormatInt(now.Unix(), 10)
	l[LabelExpires] = strconv.FormatInt(expires.Unix(), 10)
	return l
}

// tunnelLabels select the SC containers of one tunnel.
func tunnelLabels(tunnel string) map[string]string {
	return map[string]string{LabelManaged: "true", LabelTunnel: tunnel, LabelRole: RoleTunnel}
}

// watchdogLabels select the watchdogs of one tunnel.
func watchdogLabels(tunnel string) map[string]string {
	return map[string]string{LabelManaged: "true", LabelTunnel: tunnel, LabelRole: RoleWatchdog}
}

func boolEnv(b bool) string {
	if b {
		return "true"
	}
	return ""
}

// Trace renders the spec as the docker command a user could run to do the
// same, with secret values shown as ***.
func Trace(s engine.ContainerSpec) string {
	s = s.Redacted()
	args := []string{"+ docker run -d --name", s.Name}
	keys := make([]string, 0, len(s.Labels))
	for k := range s.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "--label", quote(k+"="+s.Labels[k]))
	}
	for _, e := range s.Env {
		args = append(args, "-e", quote(e.Name+"="+e.Value))
	}
	if s.Publish != nil {
		hp := ""
		if s.Publish.Port != 0 {
			hp = strconv.Itoa(s.Publish.Port)
		}
		args = append(args, "-p", fmt.Sprintf("%s:%s:%d", s.Publish.IP, hp, s.Port))
	}
	if s.NetworkMode != "" {
		args = append(args, "--network", s.NetworkMode)
	}
	for i, n := range s.Networks {
		if i == 0 && s.NetworkMode == "" {
			args = append(args, "--network", n.Network)
			for _, a := range n.Aliases {
				args = append(args, "--network-alias", a)
			}
		}
	}
	for _, m := range s.Mounts {
		mode := ""
		if m.ReadOnly {
			mode = ":ro"
		}
		args = append(args, "-v", m.Source+":"+m.Target+mode)
	}
	args = append(args, s.Image)
	for _, a := range s.Cmd {
		args = append(args, quote(a))
	}
	line := strings.Join(args, " ")
	for _, n := range s.Networks[min(1, len(s.Networks)):] {
		line += "\n+ docker network connect"
		for _, a := range n.Aliases {
			line += " --alias " + a
		}
		line += " " + n.Network + " " + s.Name
	}
	return line
}

func quote(s string) string {
	if s == "" || strings.ContainsAny(s, " \t\"'$`\\|&;<>()*?[]{}!#~") {
		return strconv.Quote(s)
	}
	return s
}
