package plugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

// Action is what the plugin is asked to do.
type Action string

// The actions.
const (
	ActionStart  Action = "start"
	ActionStop   Action = "stop"
	ActionRun    Action = "run"
	ActionStatus Action = "status"
	// ActionReap is the watchdog's: it is set by the plugin, not by users.
	ActionReap Action = "reap"
	// ActionNone is a GitHub post step's after an action that started
	// nothing (stop, status).
	ActionNone Action = "none"
)

// Config is the validated, typed form of Settings.
type Config struct {
	Backend string
	Action  Action

	Username  string
	AccessKey string
	Region    string

	TunnelName string
	// TunnelNameDerived is false when the user set tunnel_name.
	TunnelNameDerived bool
	TunnelPool        bool
	Shared            string

	Proxy, ProxySauce, ProxyLocalhost                         string
	TunnelDomains, DirectDomains, DenyDomains, TLSPassthrough []string
	LogLevel                                                  string
	ConfigFile                                                string
	SCArgs                                                    []string
	Env                                                       map[string]string
	Labels                                                    map[string]string

	Image        string
	Pull         string
	RegistryAuth *engine.RegistryAuth

	APIPort      int
	APIBind      string
	APIHostPort  int
	Publish      string
	NetworkAlias string
	NetworkMode  string
	Network      string

	Cleanup     string
	MaxLifetime time.Duration

	ReadyTimeout time.Duration
	StopTimeout  time.Duration
	Retries      int

	Kubernetes KubernetesConfig

	ContainerName string
	LogsFile      string
	Debug         bool
	LogFormat     string

	Pipeline Pipeline
	Watchdog Watchdog
}

// KubernetesConfig are the Kubernetes backend's settings.
type KubernetesConfig struct {
	Namespace       string
	Pod             string
	Service         bool
	Requests        map[string]string
	Limits          map[string]string
	ImagePullSecret string
}

// Watchdog is what a watchdog watches (action reap).
type Watchdog struct {
	Anchor   string
	Target   string
	Deadline time.Time
	Networks []string
}

// RegistryPassword returns the registry password, or "".
func (c Config) RegistryPassword() string {
	if c.RegistryAuth == nil {
		return ""
	}
	return c.RegistryAuth.Password
}

// SettingsError lists every invalid setting found; its exit code is 2.
type SettingsError struct {
	Problems []string
}

func (e *SettingsError) Error() string {
	return strings.Join(e.Problems, "\n")
}

// regionAliases maps every accepted spelling to SC5's region name.
var regionAliases = map[string]string{
	"us-west": "us-west", "us-west-1": "us-west", "us": "us-west",
	"us-east": "us-east", "us-east-4": "us-east",
	"eu-central": "eu-central", "eu-central-1": "eu-central", "eu": "eu-central",
}

// LabelPrefix is reserved for the plugin's own labels.
const LabelPrefix = "io.drone-sauce-connect."

// Config validates the settings and returns their typed form. Every problem
// is reported at once; each names the setting and how to fix it. hostname
// and random feed the tunnel name when the pipeline gives no identity.
func (s Settings) Config(p Pipeline, hostname, random string) (Config, error) {
	var probs []string
	bad := func(setting, format string, args ...any) {
		probs = append(probs, fmt.Sprintf("invalid setting %s (PLUGIN_%s): %s", setting, strings.ToUpper(setting), fmt.Sprintf(format, args...)))
	}
	c := Config{Pipeline: p}

	c.Backend = oneOf(s.Backend, "backend", bad, "auto", "docker", "kubernetes")
	c.Action = Action(strings.ToLower(strings.TrimSpace(s.Action)))
	switch c.Action {
	case ActionStart, ActionStop, ActionRun, ActionStatus, ActionReap:
	default:
		bad("action", "%q is not an action; use start, stop, run or status", s.Action)
	}
	if p.PostStep {
		// GitHub's post step ends what this action's main step started, and
		// never starts a tunnel; after stop or status it has nothing to do.
		c.Action = map[Action]Action{ActionStart: ActionStop, ActionRun: ActionStop}[c.Action]
		if c.Action == "" {
			c.Action = ActionNone
		}
	}

	c.Username = strings.TrimSpace(s.Username)
	c.AccessKey = strings.TrimSpace(s.AccessKey.Value())
	if c.Action == ActionStart || c.Action == ActionRun {
		if c.Username == "" {
			bad("username", "missing; set it (or SAUCE_USERNAME) to your Sauce Labs username")
		}
		if c.AccessKey == "" {
			bad("access_key", "missing; set it from a secret (or SAUCE_ACCESS_KEY) to your Sauce Labs access key")
		}
	}

	region, ok := regionAliases[strings.ToLower(strings.TrimSpace(s.Region))]
	if !ok {
		bad("region", "%q is not a Sauce Labs region; use us-west, us-east or eu-central", s.Region)
	}
	c.Region = region

	c.TunnelName = strings.TrimSpace(s.TunnelName)
	if c.TunnelName == "" {
		c.TunnelNameDerived = true
		id := p.ID()
		if p.StateTunnelName != "" {
			// The GitHub post step stops what the main step started.
			id = p.StateTunnelName
		}
		if id == "" {
			id = hostname + "-" + random
		}
		c.TunnelName = sanitizeName(id, maxTunnelName)
	} else if sanitizeName(c.TunnelName, maxTunnelName) != c.TunnelName {
		bad("tunnel_name", "%q has characters or a length SC and Docker cannot take; use at most %d letters, digits, '.', '_' or '-'", c.TunnelName, maxTunnelName)
	}

	c.TunnelPool = parseBool(s.TunnelPool, "tunnel_pool", bad)
	c.Debug = parseBool(s.Debug, "debug", bad)

	c.Shared = strings.TrimSpace(s.Shared)
	if c.Shared != "" && c.Shared != "all" {
		bad("shared", "%q is not supported; SC5 takes only all", s.Shared)
	}
	c.Proxy = strings.TrimSpace(s.Proxy)
	c.ProxySauce = strings.TrimSpace(s.ProxySauce)
	c.ProxyLocalhost = oneOf(s.ProxyLocalhost, "proxy_localhost", bad, "", "allow", "deny", "direct")
	c.TunnelDomains = splitList(s.TunnelDomains)
	c.DirectDomains = splitList(s.DirectDomains)
	c.DenyDomains = splitList(s.DenyDomains)
	c.TLSPassthrough = splitList(s.TLSPassthroughDomains)
	if len(c.TunnelDomains) > 0 && len(c.DirectDomains) > 0 {
		bad("direct_domains", "cannot be combined with tunnel_domains; SC5 takes one or the other")
	}
	c.LogLevel = oneOf(s.LogLevel, "log_level", bad, "error", "info", "debug")

	if f := strings.TrimSpace(s.ConfigFile); f != "" {
		abs, _ := filepath.Abs(f)
		fi, err := os.Stat(abs)
		switch {
		case errors.Is(err, os.ErrNotExist):
			bad("config_file", "%q does not exist; give the path of an SC5 YAML file in the workspace", f)
		case err != nil:
			bad("config_file", "%q cannot be read; give the path of an SC5 YAML file in the workspace", f)
		case !fi.Mode().IsRegular():
			bad("config_file", "%q is not a regular file; give the path of an SC5 YAML file in the workspace", f)
		}
		c.ConfigFile = abs
	}

	args, err := parseArgs(s.SCArgs)
	if err != nil {
		bad("sc_args", "%v; give a JSON array of strings or space-separated arguments", err)
	}
	c.SCArgs = args

	c.Env = parseObject(s.Env, "env", bad)
	for _, k := range sortedKeys(c.Env) {
		switch {
		case !strings.HasPrefix(k, "SAUCE_"):
			bad("env", "variable %q does not start with SAUCE_; only Sauce Connect's own variables may be set", k)
		case k == "SAUCE_ACCESS_KEY" || k == "SAUCE_USERNAME":
			bad("env", "%s must come from the username / access_key settings, not env", k)
		}
	}
	c.Labels = parseObject(s.Labels, "labels", bad)
	for _, k := range sortedKeys(c.Labels) {
		if strings.HasPrefix(k, LabelPrefix) {
			bad("labels", "label %q uses the prefix %s, which the plugin reserves; pick another key", k, LabelPrefix)
		}
	}

	c.Image = strings.TrimSpace(s.Image)
	if c.Image == "" || strings.ContainsAny(c.Image, " \t\n") {
		bad("image", "%q is not an image reference; use e.g. saucelabs/sauce-connect:5", s.Image)
	}
	c.Pull = oneOf(s.Pull, "pull", bad, "if-not-exists", "always", "never")
	if u := strings.TrimSpace(s.RegistryUsername); u != "" || s.RegistryPassword != "" {
		if u == "" || s.RegistryPassword == "" {
			bad("registry_username", "registry_username and registry_password go together; set both or neither")
		}
		c.RegistryAuth = &engine.RegistryAuth{Username: u, Password: s.RegistryPassword.Value()}
	}

	c.APIPort = parsePort(s.APIPort, "api_port", 1, bad)
	c.APIHostPort = parsePort(s.APIHostPort, "api_host_port", 0, bad)
	c.APIBind = strings.TrimSpace(s.APIBind)
	if _, err := netip.ParseAddr(c.APIBind); err != nil {
		bad("api_bind", "%q is not an IP address; use 127.0.0.1 (the default) or 0.0.0.0", s.APIBind)
	}
	c.Publish = oneOf(s.Publish, "publish", bad, "auto", "always", "never")
	c.NetworkAlias = strings.TrimSpace(s.NetworkAlias)
	if c.NetworkAlias != sanitizeName(c.NetworkAlias, 63) || c.NetworkAlias == "" {
		bad("network_alias", "%q is not a DNS name; use letters, digits and '-'", s.NetworkAlias)
	}
	c.NetworkMode = oneOf(s.NetworkMode, "network_mode", bad, "", "host")
	c.Network = strings.TrimSpace(s.Network)
	if c.NetworkMode == "host" && c.Network != "" {
		bad("network", "cannot be combined with network_mode: host; choose one")
	}

	c.Cleanup = oneOf(s.Cleanup, "cleanup", bad, "auto", "stop-step-only")
	if strings.TrimSpace(s.MaxLifetime) != "" {
		c.MaxLifetime = parseDuration(s.MaxLifetime, "max_lifetime", bad)
	}
	c.ReadyTimeout = parseDuration(s.ReadyTimeout, "ready_timeout", bad)
	c.StopTimeout = parseDuration(s.StopTimeout, "stop_timeout", bad)
	if n, err := strconv.Atoi(strings.TrimSpace(s.Retries)); err != nil || n < 0 {
		bad("retries", "%q is not a count; use a whole number such as 3 (0 disables retries)", s.Retries)
	} else {
		c.Retries = n
	}

	c.Kubernetes = KubernetesConfig{
		Namespace:       strings.TrimSpace(s.KubernetesNamespace),
		Pod:             strings.TrimSpace(s.KubernetesPod),
		Service:         parseBool(s.KubernetesService, "kubernetes_service", bad),
		Requests:        map[string]string{},
		Limits:          map[string]string{},
		ImagePullSecret: strings.TrimSpace(s.ImagePullSecret),
	}
	for _, q := range []struct {
		setting, value string
		into           map[string]string
		resource       string
	}{
		{"cpu_request", s.CPURequest, c.Kubernetes.Requests, "cpu"},
		{"cpu_limit", s.CPULimit, c.Kubernetes.Limits, "cpu"},
		{"memory_request", s.MemoryRequest, c.Kubernetes.Requests, "memory"},
		{"memory_limit", s.MemoryLimit, c.Kubernetes.Limits, "memory"},
	} {
		v := strings.TrimSpace(q.value)
		if v == "" {
			continue
		}
		if !quantity.MatchString(v) {
			bad(q.setting, "%q is not a Kubernetes quantity; use e.g. 250m or 1 for CPU, 256Mi or 1Gi for memory", q.value)
		}
		q.into[q.resource] = v
	}

	c.ContainerName = strings.TrimSpace(s.ContainerName)
	if c.ContainerName == "" {
		c.ContainerName = sanitizeName("sauce-connect-"+c.TunnelName, 128)
	} else if sanitizeName(c.ContainerName, 128) != c.ContainerName {
		bad("container_name", "%q is not a container name; use letters, digits, '.', '_' or '-'", c.ContainerName)
	}
	c.LogsFile = strings.TrimSpace(s.LogsFile)
	c.LogFormat = oneOf(s.LogFormat, "log_format", bad, "text", "json")

	if c.Action == ActionReap {
		w := p.Watchdog
		deadline, err := strconv.ParseInt(w.Deadline, 10, 64)
		if w.Target == "" || err != nil {
			probs = append(probs, "action reap is the watchdog's own and needs DSC_WATCHDOG_TARGET and DSC_WATCHDOG_DEADLINE; use start, stop, run or status")
		}
		c.Watchdog = Watchdog{Anchor: w.Anchor, Target: w.Target, Deadline: time.Unix(deadline, 0), Networks: splitList(w.Networks)}
	}

	if len(probs) > 0 {
		return c, &SettingsError{Problems: probs}
	}
	return c, nil
}

// quantity matches Kubernetes resource quantities such as 100m, 1.5, 512Mi, 2G.
var quantity = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$`)

type reporter func(setting, format string, args ...any)

func oneOf(v, setting string, bad reporter, allowed ...string) string {
	v = strings.ToLower(strings.TrimSpace(v))
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	var shown []string
	for _, a := range allowed {
		if a != "" {
			shown = append(shown, a)
		}
	}
	bad(setting, "%q is not one of %s", v, strings.Join(shown, ", "))
	return ""
}

func parseBool(v, setting string, bad reporter) bool {
	b, err := strconv.ParseBool(strings.TrimSpace(v))
	if err != nil {
		bad(setting, "%q is not a boolean; use true or false", v)
	}
	return b
}

func parseDuration(v, setting string, bad reporter) time.Duration {
	v = strings.TrimSpace(v)
	d, err := time.ParseDuration(v)
	if err != nil {
		// A bare number is taken as seconds, as CI users often write it.
		if n, nerr := strconv.Atoi(v); nerr == nil {
			d, err = time.Duration(n)*time.Second, nil
		}
	}
	if err != nil || d <= 0 {
		bad(setting, "%q is not a positive duration; use e.g. 90s, 3m or 1h", v)
	}
	return d
}

func parsePort(v, setting string, lowest int, bad reporter) int {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < lowest || n > 65535 {
		bad(setting, "%q is not a port; use a number from %d to 65535", v, lowest)
		return 0
	}
	return n
}

// splitList splits a comma list as Drone and Harness encode YAML lists.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// parseArgs reads extra sc arguments: a JSON array; or words separated by
// spaces, where a comma directly before a '-' also separates (that is how
// Drone and Harness join a YAML list such as [--a=1, --b=2]).
func parseArgs(v string) ([]string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil, nil
	}
	if strings.HasPrefix(v, "[") {
		var out []string
		if err := json.Unmarshal([]byte(v), &out); err != nil {
			return nil, fmt.Errorf("not a JSON array of strings: %w", err)
		}
		return out, nil
	}
	var out []string
	for _, w := range strings.Fields(v) {
		for _, part := range strings.Split(strings.ReplaceAll(w, ",-", "\x00-"), "\x00") {
			if part != "" {
				out = append(out, part)
			}
		}
	}
	return out, nil
}

// parseObject reads a JSON object of strings (Harness pretty-prints objects;
// JSON copes). Numbers and booleans are accepted and kept as text.
func parseObject(v, setting string, bad reporter) map[string]string {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil
	}
	var raw map[string]any
	if err := json.Unmarshal([]byte(v), &raw); err != nil {
		bad(setting, "not a JSON object (%v); use e.g. {\"KEY\": \"value\"}", err)
		return nil
	}
	out := make(map[string]string, len(raw))
	for k, val := range raw {
		switch x := val.(type) {
		case string:
			out[k] = x
		case float64, bool:
			out[k] = fmt.Sprint(x)
		default:
			bad(setting, "the value of %q is not a string, number or boolean", k)
		}
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
