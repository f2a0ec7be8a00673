package plugin

import (
	"maps"
	"strconv"
	"strings"
	"time"
)

// The plugin's own labels, on everything it creates.
const (
	LabelManaged  = labelPrefix + "managed"
	LabelTunnel   = labelPrefix + "tunnel"
	labelPipeline = labelPrefix + "pipeline"
	labelRunner   = labelPrefix + "runner"
	labelCreated  = labelPrefix + "created"
	LabelExpires  = labelPrefix + "expires"
	// LabelReadyBy is when the start that created SC gives up waiting for
	// it: until then, a concurrent start of the tunnel waits for it too.
	LabelReadyBy = labelPrefix + "ready-by"
)

// LabelRole tells the tunnel's container from its watchdog's.
const LabelRole = labelPrefix + "role"

// The roles.
const (
	RoleTunnel   = "tunnel"
	RoleWatchdog = "watchdog"
)

// defaultLifetime is how long a tunnel may live before it counts as leaked.
const defaultLifetime = 3 * time.Hour

// Lifetime is when the tunnel expires when the runner says nothing:
// max_lifetime from now when set, else the default lifetime.
func Lifetime(c Config, now time.Time) time.Time {
	if c.MaxLifetime > 0 {
		return now.Add(c.MaxLifetime)
	}
	return now.Add(defaultLifetime)
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
	l[labelPipeline] = sanitizeName(pipeline, 200)
	l[labelRunner] = string(c.Pipeline.Platform())
	l[labelCreated] = strconv.FormatInt(now.Unix(), 10)
	l[LabelExpires] = strconv.FormatInt(expires.Unix(), 10)
	return l
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

// EnvVar is one variable of SC's environment; a secret one is never shown.
type EnvVar struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Secret bool   `json:"secret,omitempty"`
}

// SCEnv is SC's environment: what both backends hand SC5, the API on
// apiAddress. With config_file only what is set explicitly is passed, so
// that the file's own values are not silently overridden (SC5 ranks
// variables over the file).
func SCEnv(c Config, apiAddress string) []EnvVar {
	env := []EnvVar{
		{Name: "SAUCE_USERNAME", Value: c.Username},
		{Name: "SAUCE_ACCESS_KEY", Value: c.AccessKey.Value(), Secret: true},
		{Name: "SAUCE_REGION", Value: c.Region},
		{Name: "SAUCE_TUNNEL_NAME", Value: c.TunnelName},
		{Name: "SAUCE_API_ADDRESS", Value: apiAddress},
	}
	optional := []struct {
		name, value string
		secret      bool
	}{
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
			env = append(env, EnvVar{Name: o.name, Value: o.value, Secret: o.secret})
		}
	}
	for _, k := range sortedKeys(c.Env) {
		env = append(env, EnvVar{Name: k, Value: c.Env[k], Secret: len(SecretsOfEnv([]string{k + "=" + c.Env[k]})) > 0})
	}
	return env
}

func boolEnv(b bool) string {
	if b {
		return "true"
	}
	return ""
}
