package plugin

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Action is what the plugin is asked to do.
type Action string

// The actions.
const (
	ActionStart  Action = "start"
	ActionStop   Action = "stop"
	ActionRun    Action = "run"
	ActionStatus Action = "status"
	// ActionWait waits for a Sauce Connect the pipeline runs itself.
	ActionWait Action = "wait"
	// ActionNone is a GitHub post step's after an action that started
	// nothing (stop, status).
	ActionNone Action = "none"
)

// The modes, each a type of its own as Action is.
type (
	// BackendChoice is where the tunnel runs: auto, docker or kubernetes.
	BackendChoice string
	// Pull is when SC's image is pulled: if-not-exists, always or never.
	Pull string
	// Publish is whether SC's API is published on the host: auto, always or never.
	Publish string
	// Cleanup is who ends the tunnel: auto (the watchdog too) or stop-step-only.
	Cleanup string
	// NetworkMode is where SC's network stack is: "" (decided), host or bridge.
	NetworkMode string
	// LogFormat is the plugin's own log format: text or json.
	LogFormat string
)

// The backends.
const (
	BackendAuto       BackendChoice = "auto"
	BackendDocker     BackendChoice = "docker"
	BackendKubernetes BackendChoice = "kubernetes"
)

// When SC's image is pulled.
const (
	PullIfNotExists Pull = "if-not-exists"
	PullAlways      Pull = "always"
	PullNever       Pull = "never"
)

// Whether SC's API is published on the host.
const (
	PublishAuto   Publish = "auto"
	PublishAlways Publish = "always"
	publishNever  Publish = "never"
)

// Who ends the tunnel, and where SC's network stack is.
const (
	CleanupAuto     Cleanup     = "auto"
	CleanupStopStep Cleanup     = "stop-step-only"
	NetworkHost     NetworkMode = "host"
	NetworkBridge   NetworkMode = "bridge"
)

// Config is the validated, typed form of Settings.
type Config struct {
	Backend BackendChoice
	Action  Action

	Username string
	// AccessKey keeps the Secret type, so that a stray %v prints ***.
	AccessKey Secret
	Region    string

	TunnelName string
	// TunnelNameDerived is false when the user set tunnel_name.
	TunnelNameDerived bool
	TunnelPool        bool
	Shared            string

	Proxy, ProxySauce, ProxyLocalhost string
	// ProxySauceFrom names the runner's variable proxy_sauce was taken from.
	ProxySauceFrom                                            string
	TunnelDomains, DirectDomains, DenyDomains, TLSPassthrough []string
	LogLevel                                                  string
	ConfigFile                                                string
	SCArgs                                                    []string
	Env                                                       map[string]string
	Labels                                                    map[string]string
	// MetadataInFile is true when config_file sets SC's metadata itself.
	MetadataInFile bool
	// FileOptions are config_file's options (lists joined by commas);
	// FileYAML the same as the file has them.
	FileOptions map[string]string
	FileYAML    map[string]any

	Image        string
	Pull         Pull
	RegistryAuth *RegistryAuth

	// APIURL is where action wait finds SC's API, without credentials;
	// APIAuth the user:pass it carried, sent as basic auth.
	APIURL       string
	APIAuth      *url.Userinfo
	APIPort      int
	APIBind      string
	APIHostPort  int
	Publish      Publish
	NetworkAlias string
	NetworkMode  NetworkMode
	Network      string

	Cleanup     Cleanup
	MaxLifetime time.Duration

	ReadyTimeout time.Duration
	StopTimeout  time.Duration
	Retries      int
	// RESTURL replaces the region's Sauce Labs REST API host ("": the region's).
	RESTURL string
	// RESTConfirm has the start wait until Sauce Labs lists the tunnel.
	RESTConfirm bool

	Kubernetes KubernetesConfig

	ContainerName string
	LogsFile      string
	Debug         bool
	LogFormat     LogFormat

	Pipeline Pipeline
}

// KubernetesConfig are the Kubernetes backend's settings.
type KubernetesConfig struct {
	Namespace       string
	Pod             string
	Service         bool
	Requests        map[string]string
	Limits          map[string]string
	ImagePullSecret string
	NodeSelector    map[string]string
	Tolerations     []Toleration
	ServiceAccount  string
	// RunAsUser, when set, runs SC as that uid in a pod fit for the
	// restricted Pod Security level.
	RunAsUser *int64
}

// Toleration lets the tunnel pod run on nodes with a matching taint: the
// fields of a Kubernetes toleration. It mirrors kube.Toleration, which this
// package may not import; the kubernetes backend converts one into the
// other, so the compiler keeps the two identical.
type Toleration struct {
	Key               string `json:"key,omitempty"`
	Operator          string `json:"operator,omitempty"`
	Value             string `json:"value,omitempty"`
	Effect            string `json:"effect,omitempty"`
	TolerationSeconds *int64 `json:"tolerationSeconds,omitempty"`
}

// RegistryAuth is a login to the registry that holds SC's image.
type RegistryAuth struct {
	Username, Password string
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

// labelPrefix is reserved for the plugin's own labels.
const labelPrefix = "io.drone-sauce-connect."

// Config validates the settings and returns their typed form. Every problem
// is reported at once; each names the setting and how to fix it. hostname
// and random feed the tunnel name when the pipeline gives no identity.
func (s Settings) Config(p Pipeline, hostname, random string) (Config, error) {
	v := &validation{s: s, c: Config{Pipeline: p}}
	v.text()
	v.mode()
	v.identity(hostname, random)
	v.scOptions()
	v.image()
	v.network()
	v.lifecycle()
	v.kubernetes()
	v.output()
	if len(v.probs) > 0 {
		return v.c, &SettingsError{Problems: v.probs}
	}
	return v.c, nil
}

// validation turns Settings into a Config, group by group, collecting
// every problem.
type validation struct {
	s     Settings
	c     Config
	probs []string
}

// bad records a problem with a setting.
func (v *validation) bad(setting, format string, args ...any) {
	v.probs = append(v.probs, fmt.Sprintf("invalid setting %s (PLUGIN_%s): %s", setting, strings.ToUpper(setting), fmt.Sprintf(format, args...)))
}

// text refuses a NUL character in any setting, as given or decoded from
// JSON: no environment variable or argument can carry it.
func (v *validation) text() {
	val := reflect.ValueOf(v.s)
	for i, info := range settingsTable() {
		if strings.ContainsRune(val.Field(i).String(), 0) || strings.Contains(val.Field(i).String(), `\u0000`) {
			v.bad(info.Name, "contains a NUL character; remove it")
		}
	}
}

// defaultAPIURL is where action wait looks for SC by default: in the same
// pod (Kubernetes) or network namespace, on SC's default API port.
const defaultAPIURL = "http://localhost:8032"

// opens reports whether the action opens a tunnel.
func (c Config) opens() bool { return c.Action == ActionStart || c.Action == ActionRun }

// mode: the backend and the action (GitHub's post step maps its own).
func (v *validation) mode() {
	s, c := v.s, &v.c
	c.Backend = BackendChoice(oneOf(s.Backend, "backend", v.bad, "auto", "docker", "kubernetes"))
	c.Action = Action(strings.ToLower(strings.TrimSpace(s.Action)))
	switch c.Action {
	case ActionStart, ActionStop, ActionRun, ActionStatus, ActionWait:
	default:
		v.bad("action", "%q is not an action; use start, stop, run, status or wait", s.Action)
	}
	if c.Pipeline.PostStep {
		// GitHub's post step ends what this action's main step started, and
		// never starts a tunnel; after stop or status it has nothing to do.
		c.Action = map[Action]Action{ActionStart: ActionStop, ActionRun: ActionStop}[c.Action]
		if c.Action == "" {
			c.Action = ActionNone
		}
	}
}

// identity: the credentials, the region and the tunnel's name.
func (v *validation) identity(hostname, random string) {
	s, c, p := v.s, &v.c, v.c.Pipeline
	c.Username = strings.TrimSpace(s.Username)
	c.AccessKey = Secret(strings.TrimSpace(s.AccessKey.Value()))
	if c.opens() {
		if c.Username == "" {
			v.bad("username", "missing; set it (or SAUCE_USERNAME) to your Sauce Labs username")
		}
		if c.AccessKey == "" {
			v.bad("access_key", "missing; set it from a secret (or SAUCE_ACCESS_KEY) to your Sauce Labs access key")
		}
	}
	c.Region = parseRegion(s.Region, v.bad)

	c.TunnelName = strings.TrimSpace(s.TunnelName)
	if c.TunnelName == "" {
		c.TunnelNameDerived = true
		// The GitHub post step stops what the main step started.
		id := cmp.Or(p.StateTunnelName, p.ID(), hostname+"-"+random)
		if p.StateTunnelName == "" && p.legOwn() && c.opens() {
			// A part of this start's own: the legs of a matrix share the rest.
			id += "-" + random
		}
		c.TunnelName = sanitizeName(id, maxTunnelName)
	} else if sanitizeName(c.TunnelName, maxTunnelName) != c.TunnelName {
		v.bad("tunnel_name", "%q has characters or a length SC and Docker cannot take; use at most %d letters, digits, '.', '_' or '-'", c.TunnelName, maxTunnelName)
	}
}

// scOptions: what SC is told, from settings, env, sc_args and config_file.
func (v *validation) scOptions() {
	s, c := v.s, &v.c
	c.TunnelPool = parseBool(s.TunnelPool, "tunnel_pool", v.bad)
	c.Shared = strings.TrimSpace(s.Shared)
	if c.Shared != "" && c.Shared != "all" {
		v.bad("shared", "%q is not supported; SC5 takes only all", s.Shared)
	}
	c.Proxy = strings.TrimSpace(s.Proxy)
	c.ProxySauce = strings.TrimSpace(s.ProxySauce)
	if c.ProxySauce == "" {
		c.ProxySauce, c.ProxySauceFrom = c.Pipeline.runnerProxy()
	}
	c.ProxyLocalhost = oneOf(s.ProxyLocalhost, "proxy_localhost", v.bad, "", "allow", "deny", "direct")
	c.TunnelDomains = SplitList(s.TunnelDomains)
	c.DirectDomains = SplitList(s.DirectDomains)
	c.DenyDomains = SplitList(s.DenyDomains)
	c.TLSPassthrough = SplitList(s.TLSPassthroughDomains)
	if len(c.TunnelDomains) > 0 && len(c.DirectDomains) > 0 {
		v.bad("direct_domains", "cannot be combined with tunnel_domains; SC5 takes one or the other")
	}
	c.LogLevel = oneOf(s.LogLevel, "log_level", v.bad, "", "error", "info", "debug")
	v.configFile()
	if c.Region == "" && strings.TrimSpace(s.Region) == "" && c.opens() {
		v.bad("region", "missing; set it to the Sauce Labs data centre of your account: us-west, us-east or eu-central")
	}
	c.Env = parseObject(s.Env, "env", v.bad)
	v.scArgs()
	for _, k := range sortedKeys(c.Env) {
		if o, _, ok := optionOfEnv(k); !ok {
			v.bad("env", "variable %q does not start with SAUCE_; only Sauce Connect's own variables may be set", k)
		} else if o.Owned() {
			v.bad("env", "%s is set by the plugin; %s", k, useInstead(o.Setting))
		}
	}
	c.Labels = parseObject(s.Labels, "labels", v.bad)
	for _, k := range sortedKeys(c.Labels) {
		if strings.HasPrefix(k, labelPrefix) {
			v.bad("labels", "label %q uses the prefix %s, which the plugin reserves; pick another key", k, labelPrefix)
		}
	}
}

// configFile: config_file, a file the step can read, and its options.
func (v *validation) configFile() {
	f := strings.TrimSpace(v.s.ConfigFile)
	if f == "" {
		return
	}
	abs, _ := filepath.Abs(f)
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, os.ErrNotExist):
		v.bad("config_file", "%q does not exist; give the path of an SC5 YAML file in the workspace", f)
	case err != nil:
		v.bad("config_file", "%q cannot be read; give the path of an SC5 YAML file in the workspace", f)
	case !fi.Mode().IsRegular():
		v.bad("config_file", "%q is not a regular file; give the path of an SC5 YAML file in the workspace", f)
	}
	v.c.ConfigFile = abs
	if err == nil {
		v.c.checkConfigFile(v.bad)
	}
}

// scArgs: sc_args, read as SC reads them; none may set what the plugin
// owns, nor what env sets too.
func (v *validation) scArgs() {
	c := &v.c
	args, err := splitArgs(v.s.SCArgs)
	if err != nil {
		v.bad("sc_args", "%v; give a JSON array of strings, or arguments separated by spaces with values quoted as in a shell", err)
	}
	c.SCArgs = args
	parsed, err := parseSCArgs(args)
	if err != nil {
		v.bad("sc_args", "%v; give it one, e.g. --log-http=api:url", err)
	}
	for _, a := range parsed {
		switch _, inEnv := c.Env[a.Opt.Env()]; {
		case a.Opt.Owned():
			v.bad("sc_args", "%s is set by the plugin; %s", a.Written, useInstead(a.Opt.Setting))
		case inEnv && a.Known:
			v.bad("sc_args", "%s is set in env too (%s); set it in one place", a.Written, a.Opt.Env())
		}
	}
}

// image: SC's image, how it is pulled, and the registry login.
func (v *validation) image() {
	s, c := v.s, &v.c
	c.Image = strings.TrimSpace(s.Image)
	if c.Image == "" || strings.ContainsAny(c.Image, " \t\n") {
		v.bad("image", "%q is not an image reference; use e.g. %s", s.Image, DefaultSettings().Image)
	}
	c.Pull = Pull(oneOf(s.Pull, "pull", v.bad, "if-not-exists", "always", "never"))
	if u := strings.TrimSpace(s.RegistryUsername); u != "" || s.RegistryPassword != "" {
		if u == "" || s.RegistryPassword == "" {
			v.bad("registry_username", "registry_username and registry_password go together; set both or neither")
		}
		c.RegistryAuth = &RegistryAuth{Username: u, Password: s.RegistryPassword.Value()}
	}
}

// network: SC's API ports and where SC attaches.
func (v *validation) network() {
	s, c := v.s, &v.c
	c.APIURL = strings.TrimRight(strings.TrimSpace(s.APIURL), "/")
	switch u, err := url.Parse(c.APIURL); {
	case c.APIURL != "" && c.Action != ActionWait:
		v.bad("api_url", "is only for action wait, whose Sauce Connect the pipeline runs itself; remove it, or set action: wait")
	case c.APIURL == "":
		c.APIURL = defaultAPIURL
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/"):
		v.bad("api_url", "%q is not the address of SC's API; give scheme, host and port, e.g. http://localhost:8032", redactURL(c.APIURL))
	case u.User != nil:
		// SC's --api-basic-auth: sent with every request, never shown.
		c.APIAuth, u.User = u.User, nil
		c.APIURL = u.String()
	}
	c.APIPort = parsePort(s.APIPort, "api_port", 1, v.bad)
	c.APIHostPort = parsePort(s.APIHostPort, "api_host_port", 0, v.bad)
	c.APIBind = strings.TrimSpace(s.APIBind)
	if _, err := netip.ParseAddr(c.APIBind); err != nil {
		v.bad("api_bind", "%q is not an IP address; use 127.0.0.1 (the default) or 0.0.0.0", s.APIBind)
	}
	c.Publish = Publish(oneOf(s.Publish, "publish", v.bad, "auto", "always", "never"))
	c.NetworkAlias = strings.TrimSpace(s.NetworkAlias)
	if c.NetworkAlias != sanitizeName(c.NetworkAlias, 63) || c.NetworkAlias == "" {
		v.bad("network_alias", "%q is not a DNS name; use letters, digits and '-'", s.NetworkAlias)
	}
	c.NetworkMode = NetworkMode(oneOf(s.NetworkMode, "network_mode", v.bad, "", "host", "bridge"))
	c.Network = strings.TrimSpace(s.Network)
	if c.NetworkMode == NetworkHost && c.Network != "" {
		v.bad("network", "cannot be combined with network_mode: host; choose one")
	}
}

// lifecycle: cleanup, lifetime, timeouts and retries.
func (v *validation) lifecycle() {
	s, c := v.s, &v.c
	c.Cleanup = Cleanup(oneOf(s.Cleanup, "cleanup", v.bad, "auto", "stop-step-only"))
	if strings.TrimSpace(s.MaxLifetime) != "" {
		c.MaxLifetime = parseDuration(s.MaxLifetime, "max_lifetime", v.bad)
	}
	c.ReadyTimeout = parseDuration(s.ReadyTimeout, "ready_timeout", v.bad)
	c.StopTimeout = parseDuration(s.StopTimeout, "stop_timeout", v.bad)
	switch {
	case c.StopTimeout > 0 && c.StopTimeout < time.Second:
		v.bad("stop_timeout", "%s is less than a second, which the engine cannot give SC (it counts whole seconds); use at least 1s", c.StopTimeout)
	case c.StopTimeout%time.Second != 0:
		// The engine and the kubelet count whole seconds: round up.
		c.StopTimeout = c.StopTimeout.Truncate(time.Second) + time.Second
	}
	if c.MaxLifetime > 0 && c.ReadyTimeout > 0 && c.MaxLifetime < c.ReadyTimeout {
		v.bad("max_lifetime", "%s is shorter than ready_timeout (%s): the tunnel could expire before it is ready; make max_lifetime longer, or ready_timeout shorter", c.MaxLifetime, c.ReadyTimeout)
	}
	c.RESTURL = strings.TrimRight(strings.TrimSpace(s.RESTURL), "/")
	switch u, err := url.Parse(c.RESTURL); {
	case c.RESTURL == "":
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		v.bad("rest_url", "%q is not an http(s) URL; use e.g. https://api.eu-central-1.saucelabs.com, or leave it unset for the region's", redactURL(c.RESTURL))
	case u.User != nil:
		v.bad("rest_url", "carries credentials (%s); remove them: the REST API is called with username and access_key", redactURL(c.RESTURL))
	}
	c.RESTConfirm = parseBool(s.RESTConfirm, "rest_confirm", v.bad)
	if n, err := strconv.Atoi(strings.TrimSpace(s.Retries)); err != nil || n < 0 {
		v.bad("retries", "%q is not a count; use a whole number such as 3 (0 disables retries)", s.Retries)
	} else {
		c.Retries = n
	}
}

// kubernetes: the Kubernetes backend's own settings.
func (v *validation) kubernetes() {
	s, c := v.s, &v.c
	c.Kubernetes = KubernetesConfig{
		Namespace:       strings.TrimSpace(s.KubernetesNamespace),
		Pod:             strings.TrimSpace(s.KubernetesPod),
		Service:         parseBool(s.KubernetesService, "kubernetes_service", v.bad),
		Requests:        map[string]string{},
		Limits:          map[string]string{},
		ImagePullSecret: strings.TrimSpace(s.ImagePullSecret),
		NodeSelector:    parseObject(s.NodeSelector, "kubernetes_node_selector", v.bad),
		Tolerations:     parseTolerations(s.Tolerations, v.bad),
		ServiceAccount:  strings.TrimSpace(s.ServiceAccount),
	}
	if u := strings.TrimSpace(s.RunAsUser); u != "" {
		if n, err := strconv.ParseInt(u, 10, 64); err != nil || n < 1 || n > 2147483647 {
			v.bad("kubernetes_run_as_user", "%q is not a non-root uid; use a number from 1 to 2147483647 that the image can run as, e.g. 65532", s.RunAsUser)
		} else {
			c.Kubernetes.RunAsUser = &n
		}
	}
	if sa := c.Kubernetes.ServiceAccount; sa != "" && (len(sa) > 253 || !dnsSubdomain.MatchString(sa)) {
		v.bad("kubernetes_service_account", "%q is not a service account name; use lowercase letters, digits, '-' and '.'", sa)
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
		val := strings.TrimSpace(q.value)
		if val == "" {
			continue
		}
		if !quantity.MatchString(val) {
			v.bad(q.setting, "%q is not a Kubernetes quantity; use e.g. 250m or 1 for CPU, 256Mi or 1Gi for memory", q.value)
		}
		q.into[q.resource] = val
	}
}

// output: the container's name, SC's log file and the plugin's own log.
func (v *validation) output() {
	s, c := v.s, &v.c
	c.ContainerName = strings.TrimSpace(s.ContainerName)
	if c.ContainerName == "" {
		c.ContainerName = sanitizeName("sauce-connect-"+c.TunnelName, 128)
	} else if sanitizeName(c.ContainerName, 128) != c.ContainerName {
		v.bad("container_name", "%q is not a container name; use letters, digits, '.', '_' or '-'", c.ContainerName)
	}
	c.LogsFile = strings.TrimSpace(s.LogsFile)
	c.Debug = parseBool(s.Debug, "debug", v.bad)
	c.LogFormat = LogFormat(oneOf(s.LogFormat, "log_format", v.bad, "text", "json"))
}

// dnsSubdomain matches a Kubernetes object name (RFC 1123 subdomain).
var dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

// parseTolerations reads a JSON list of Kubernetes tolerations, refusing
// fields and values Kubernetes would refuse, so that the pod is not
// rejected after the Secret was made.
func parseTolerations(v string, bad reporter) []Toleration {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(v))
	dec.DisallowUnknownFields()
	var out []Toleration
	if err := dec.Decode(&out); err != nil {
		bad("kubernetes_tolerations", "not a JSON list of tolerations (%v); use e.g. [{\"key\": \"ci\", \"operator\": \"Exists\", \"effect\": \"NoSchedule\"}]", err)
		return nil
	}
	for i, t := range out {
		switch {
		case t.Operator != "" && t.Operator != "Equal" && t.Operator != "Exists":
			bad("kubernetes_tolerations", "item %d: operator %q is not Equal or Exists", i+1, t.Operator)
		case t.Operator == "Exists" && t.Value != "":
			bad("kubernetes_tolerations", "item %d: operator Exists takes no value; remove \"value\"", i+1)
		case t.Key == "" && t.Operator != "Exists":
			bad("kubernetes_tolerations", "item %d: no key; give a key, or operator Exists to tolerate every taint", i+1)
		case t.Effect != "" && t.Effect != "NoSchedule" && t.Effect != "PreferNoSchedule" && t.Effect != "NoExecute":
			bad("kubernetes_tolerations", "item %d: effect %q is not NoSchedule, PreferNoSchedule or NoExecute", i+1, t.Effect)
		case t.TolerationSeconds != nil && t.Effect != "NoExecute":
			bad("kubernetes_tolerations", "item %d: tolerationSeconds needs effect NoExecute", i+1)
		}
	}
	return out
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
		// A bare number is taken as seconds, as CI users often write it,
		// up to what a duration holds (292 years).
		if n, nerr := strconv.ParseInt(v, 10, 64); nerr == nil && n <= int64(math.MaxInt64/time.Second) {
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

// SplitList splits a comma list as Drone and Harness encode YAML lists.
func SplitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// splitArgs reads extra sc arguments: a JSON array; or words separated by
// spaces, quoted as in a POSIX shell ('…' as is, "…" with \ escaping " \ $
// and `, \ outside quotes escaping any character), where an unquoted comma
// directly before a '-' also separates (that is how Drone and Harness join
// a YAML list such as [--a=1, --b=2]).
func splitArgs(v string) ([]string, error) {
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
	w := &words{}
	for i := 0; i < len(v); i++ {
		switch ch := v[i]; {
		case ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r', ch == ',' && i+1 < len(v) && v[i+1] == '-':
			w.end()
		case ch == '\\' && i+1 < len(v):
			i++
			w.add(v[i : i+1])
		case ch == '\'' || ch == '"':
			n, err := w.quoted(v[i:])
			if err != nil {
				return nil, err
			}
			i += n
		default:
			w.add(v[i : i+1])
		}
	}
	w.end()
	return w.out, nil
}

// words gathers the words of sc_args' string form.
type words struct {
	out    []string
	word   strings.Builder
	inWord bool
}

func (w *words) add(s string) { w.word.WriteString(s); w.inWord = true }

func (w *words) end() {
	if w.inWord {
		w.out = append(w.out, w.word.String())
	}
	w.word.Reset()
	w.inWord = false
}

// quoted takes the quoted part at the start of s ('…' as is, "…" with \
// escaping " \ $ and `) and returns where its closing quote is.
func (w *words) quoted(s string) (int, error) {
	w.inWord = true
	if s[0] == '\'' {
		j := strings.IndexByte(s[1:], '\'')
		if j < 0 {
			return 0, errors.New("a ' is not closed")
		}
		w.word.WriteString(s[1 : 1+j])
		return 1 + j, nil
	}
	for i := 1; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0:
			i++
		case s[i] == '"':
			return i, nil
		}
		w.word.WriteByte(s[i])
	}
	return 0, errors.New(`a " is not closed`)
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
	return slices.Sorted(maps.Keys(m))
}

// useInstead says what to do instead of setting an option the plugin
// sets (in env or sc_args they would duplicate or silently override the
// plugin's value: SC5 ranks flags over variables).
func useInstead(setting string) string {
	if setting == "-" {
		return "remove it (the plugin's runner metadata names the CI platform)"
	}
	return "use the " + setting + " setting instead"
}

// parseRegion maps a region to SC5's name. SC5 requires one, as does
// Sauce's own GitHub action: a silent default would open the tunnel in
// another data centre, where tests fail much later with "tunnel not found".
func parseRegion(v string, bad reporter) string {
	v = strings.ToLower(strings.TrimSpace(v))
	if v == "" {
		return ""
	}
	region, ok := regionAliases[v]
	if !ok {
		bad("region", "%q is not a Sauce Labs region; use us-west, us-east or eu-central", v)
	}
	return region
}

// checkConfigFile reads config_file's options into FileOptions (its secrets
// are masked like the settings', its api-basic-auth is what the probe
// sends). SC5 ranks flags over variables over the file, so every option
// the plugin passes would silently override the file: a file that sets
// what the plugin owns is refused, and so is one that sets what a setting
// sets too. The file's region stands in for the region setting.
func (c *Config) checkConfigFile(bad reporter) {
	raw, err := os.ReadFile(c.ConfigFile)
	var opts map[string]any
	var text map[string]string
	if err == nil {
		opts, text, err = readSCFile(raw)
	}
	if err != nil {
		bad("config_file", "%q is not an SC5 YAML config file (%v); fix the file", c.ConfigFile, err)
		return
	}
	set := map[string]bool{
		"log-level": c.LogLevel != "", "tunnel-pool": c.TunnelPool, "shared": c.Shared != "", "proxy": c.Proxy != "",
		"proxy-sauce": c.ProxySauce != "" && c.ProxySauceFrom == "", "proxy-localhost": c.ProxyLocalhost != "", "tunnel-domains": len(c.TunnelDomains) > 0,
		"direct-domains": len(c.DirectDomains) > 0, "deny-domains": len(c.DenyDomains) > 0, "tls-passthrough-domains": len(c.TLSPassthrough) > 0,
	}
	c.FileOptions, c.FileYAML = text, opts
	for _, opt := range slices.Sorted(maps.Keys(opts)) {
		o, _ := lookupOption(opt, false)
		setting, owned := o.Setting, o.Owned()
		switch {
		case opt == "region":
			fromFile := parseRegion(fmt.Sprint(opts[opt]), func(_, format string, args ...any) {
				bad("config_file", "region: "+format, args...)
			})
			if c.Region != "" && fromFile != "" && fromFile != c.Region {
				bad("config_file", "sets region %s, but the region setting is %s; set it in one place", fromFile, c.Region)
			}
			c.Region = cmp.Or(c.Region, fromFile)
		case opt == "metadata":
			c.MetadataInFile = true
		case opt == "proxy-sauce":
			// The file's proxy wins over the runner's; the REST API's calls
			// take it too.
			c.ProxySauce, c.ProxySauceFrom = "", ""
		case opt == "username" || opt == "access-key":
			bad("config_file", "sets %s; keep the credentials in secrets, in the username and access_key settings", opt)
		case opt == "tunnel-name" || opt == "api-address" || opt == "config-file":
			bad("config_file", "sets %s, which the plugin sets from the %s setting; remove it from the file", opt, setting)
		case owned && set[opt]:
			bad("config_file", "sets %s, and so does the %s setting; set it in one place", opt, setting)
		}
	}
}

// redactURL shows a URL (or host:port) with its user:pass as ***, for
// messages.
func redactURL(v string) string {
	at := strings.LastIndex(v, "@")
	if at < 0 {
		return v
	}
	start := 0
	if i := strings.Index(v, "://"); i >= 0 && i < at {
		start = i + 3
	}
	return v[:start] + maskText + v[at:]
}
