package plugin

import (
	"cmp"
	"fmt"
	"reflect"
	"strings"

	"github.com/kelseyhightower/envconfig"
)

// Secret is a setting whose value is never printed: its String and GoString
// methods redact it, so a stray %v or %+v cannot leak it.
type Secret string

// String returns "***" for a set secret and "" for an empty one.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "***"
}

// GoString redacts like String.
func (s Secret) GoString() string { return s.String() }

// Value returns the secret itself.
func (s Secret) Value() string { return string(s) }

// Settings are the plugin's settings exactly as the pipeline gave them: one
// field per PLUGIN_<NAME> variable, all strings, so that reading never fails
// and Config can report every problem at once. The tags are the public
// contract: the README's settings table is generated from them.
type Settings struct {
	Backend string `envconfig:"PLUGIN_BACKEND" def:"auto" desc:"auto (Docker when an engine answers, else Kubernetes when running in a pod), docker or kubernetes" group:"tuning" example:"kubernetes"`
	Action  string `envconfig:"PLUGIN_ACTION" def:"start" desc:"start (open the tunnel and leave it running), stop, run (stay in the foreground for the tunnel's life), status, or wait (for a Sauce Connect the pipeline runs itself, at api_url)" group:"essentials" example:"stop"`

	Username  string `envconfig:"PLUGIN_USERNAME" desc:"Sauce Labs username; falls back to SAUCE_USERNAME; required for start and run" group:"essentials" required:"start, run" example:"from_secret: sauce_username"`
	AccessKey Secret `envconfig:"PLUGIN_ACCESS_KEY" desc:"Sauce Labs access key (a secret); falls back to SAUCE_ACCESS_KEY; required for start and run" group:"essentials" required:"start, run" example:"from_secret: sauce_access_key"`
	Region    string `envconfig:"PLUGIN_REGION" desc:"the Sauce Labs data centre of your account: us-west, us-east or eu-central (also us-west-1, us-east-4, eu-central-1, us, eu); required for start and run, as by SC5" group:"essentials" required:"start, run" example:"eu-central"`

	TunnelName            string `envconfig:"PLUGIN_TUNNEL_NAME" desc:"tunnel name, account-wide at Sauce Labs; falls back to SAUCE_TUNNEL_NAME; default one per pipeline leg, from the pipeline's identity (see Tunnel names), which start, stop and the outputs agree on" group:"essentials" example:"web-e2e-${DRONE_BUILD_NUMBER}"`
	TunnelPool            string `envconfig:"PLUGIN_TUNNEL_POOL" def:"false" desc:"true to run the tunnel in a pool of tunnels sharing the name (SAUCE_TUNNEL_POOL)" group:"sauce connect" example:"true"`
	Shared                string `envconfig:"PLUGIN_SHARED" desc:"all to share the tunnel with your organisation (SAUCE_SHARED)" group:"sauce connect" example:"all"`
	Proxy                 string `envconfig:"PLUGIN_PROXY" desc:"upstream proxy for traffic to the app under test, host:port or a URL (SAUCE_PROXY)" group:"sauce connect" example:"http://proxy.corp:3128"`
	ProxySauce            string `envconfig:"PLUGIN_PROXY_SAUCE" desc:"proxy for traffic to Sauce Labs (SAUCE_PROXY_SAUCE); default: the runner's HTTPS_PROXY or HTTP_PROXY, unless NO_PROXY exempts saucelabs.com" group:"sauce connect" example:"http://proxy.corp:3128"`
	ProxyLocalhost        string `envconfig:"PLUGIN_PROXY_LOCALHOST" desc:"allow, deny or direct: how SC treats requests to localhost (SC's default is deny)" group:"essentials" example:"allow"`
	TunnelDomains         string `envconfig:"PLUGIN_TUNNEL_DOMAINS" desc:"comma list of domain regexps sent through the tunnel (SAUCE_TUNNEL_DOMAINS)" group:"sauce connect" example:".*\\.internal\\.example,localhost"`
	DirectDomains         string `envconfig:"PLUGIN_DIRECT_DOMAINS" desc:"comma list of domain regexps that bypass the tunnel (SAUCE_DIRECT_DOMAINS)" group:"sauce connect" example:"cdn\\.example\\.com"`
	DenyDomains           string `envconfig:"PLUGIN_DENY_DOMAINS" desc:"comma list of domain regexps SC refuses (SAUCE_DENY_DOMAINS)" group:"sauce connect" example:"ads\\.example\\.com"`
	TLSPassthroughDomains string `envconfig:"PLUGIN_TLS_PASSTHROUGH_DOMAINS" desc:"comma list of domain regexps whose TLS SC does not re-sign (SAUCE_TLS_PASSTHROUGH_DOMAINS)" group:"sauce connect" example:"bank\\.example\\.com"`
	LogLevel              string `envconfig:"PLUGIN_LOG_LEVEL" desc:"Sauce Connect's log level: error, info or debug (SC's default: info)" group:"sauce connect" example:"debug"`
	ConfigFile            string `envconfig:"PLUGIN_CONFIG_FILE" desc:"an SC5 YAML config file the step can read; its options (with the secret options of sc_args merged in) are copied into SC's container as /etc/sauce-connect/sauce-connect.yaml" group:"sauce connect" example:"ci/sauce-connect.yaml"`
	SCArgs                string `envconfig:"PLUGIN_SC_ARGS" desc:"extra sc run arguments, read as SC reads them (-k v, -kv, --key=v): a JSON array, or a string quoted as in a shell ('…', \"…\"); the secret ones (--auth, --api-basic-auth, --header) reach SC in its config file, never on its command line" group:"sauce connect" example:"[\"--log-http=api:url\"]"`
	Env                   string `envconfig:"PLUGIN_ENV" desc:"extra SAUCE_* variables for SC, a JSON object" group:"sauce connect" example:"{\"SAUCE_DNS_SERVER\": \"1.1.1.1\"}"`
	Labels                string `envconfig:"PLUGIN_LABELS" desc:"extra labels for the SC container, a JSON object" group:"docker" example:"{\"team\": \"web\"}"`

	Image            string `envconfig:"PLUGIN_IMAGE" def:"saucelabs/sauce-connect:5.5.3" desc:"the Sauce Connect 5 image: an exact version tag (Sauce's Docker Hub list), or image@sha256:<digest>" group:"docker" example:"mirror.corp/saucelabs/sauce-connect:5.5.3"`
	Pull             string `envconfig:"PLUGIN_PULL" def:"if-not-exists" desc:"if-not-exists, always or never" group:"docker" example:"always"`
	RegistryUsername string `envconfig:"PLUGIN_REGISTRY_USERNAME" desc:"username for a private registry or mirror holding the image" group:"docker" example:"from_secret: mirror_user"`
	RegistryPassword Secret `envconfig:"PLUGIN_REGISTRY_PASSWORD" desc:"password for that registry (a secret)" group:"docker" example:"from_secret: mirror_password"`

	APIURL       string `envconfig:"PLUGIN_API_URL" desc:"action wait: the API of the Sauce Connect your pipeline runs itself (a service, Background step or sidecar, with SAUCE_API_ADDRESS set); default http://localhost:8032, SC in the same pod" group:"sauce connect" example:"http://sauce-connect:8032"`
	APIPort      string `envconfig:"PLUGIN_API_PORT" def:"8032" desc:"SC's API port inside the container (sets SAUCE_API_ADDRESS=:<port>)" group:"docker" example:"9000"`
	APIBind      string `envconfig:"PLUGIN_API_BIND" def:"127.0.0.1" desc:"host address the API is published on" group:"docker" example:"0.0.0.0"`
	APIHostPort  string `envconfig:"PLUGIN_API_HOST_PORT" def:"8032" desc:"host port the API is published on; 0 picks a free port (printed and written to the outputs)" group:"docker" example:"0"`
	Publish      string `envconfig:"PLUGIN_PUBLISH" def:"auto" desc:"auto, always or never: publish the API on the host (auto: when later steps may run on the host)" group:"docker" example:"always"`
	NetworkAlias string `envconfig:"PLUGIN_NETWORK_ALIAS" def:"sauce-connect" desc:"DNS name of the tunnel on user-defined networks, for later container steps" group:"docker" example:"tunnel"`
	NetworkMode  string `envconfig:"PLUGIN_NETWORK_MODE" desc:"host to run SC in the host's network namespace (pair with proxy_localhost: allow; the API then listens on api_bind:api_host_port), bridge to keep it off the host's; default: host on GitHub Actions when the job runs on the runner, as Sauce's own action, else SC's own network" group:"essentials" example:"host"`
	Network      string `envconfig:"PLUGIN_NETWORK" desc:"an extra network to attach SC to, by name" group:"docker" example:"qa-services"`

	Cleanup     string `envconfig:"PLUGIN_CLEANUP" def:"auto" desc:"auto (a watchdog removes the tunnel when the pipeline ends, even without a stop step) or stop-step-only" group:"tuning" example:"stop-step-only"`
	MaxLifetime string `envconfig:"PLUGIN_MAX_LIFETIME" desc:"the longest the tunnel may live; default the runner's build timeout (Drone io.drone.expires / io.drone.ttl), else 3h" group:"tuning" example:"2h"`

	ReadyTimeout string `envconfig:"PLUGIN_READY_TIMEOUT" def:"3m" desc:"how long to wait for the tunnel to be ready, retries included" group:"tuning" example:"5m"`
	StopTimeout  string `envconfig:"PLUGIN_STOP_TIMEOUT" def:"30s" desc:"how long SC may drain after SIGTERM before it is killed (on Kubernetes, the tunnel pod's termination grace period)" group:"tuning" example:"2m"`
	RESTURL      string `envconfig:"PLUGIN_REST_URL" desc:"Sauce Labs' REST API, through which the start confirms the tunnel and a stop deletes a tunnel SC could not close itself (killed, crashed, out of stop_timeout); default the region's, https://api.<region>.saucelabs.com" group:"tuning" example:"https://api.eu-central-1.saucelabs.com"`
	RESTConfirm  string `envconfig:"PLUGIN_REST_CONFIRM" def:"true" desc:"after SC's /readyz says ready, wait (within ready_timeout) until Sauce Labs' REST API lists the tunnel as running; false takes SC's word alone" group:"tuning" example:"false"`
	Retries      string `envconfig:"PLUGIN_RETRIES" def:"3" desc:"restarts when SC exits before ready for a reason a retry can fix (never for bad credentials)" group:"tuning" example:"0"`

	KubernetesNamespace string `envconfig:"PLUGIN_KUBERNETES_NAMESPACE" desc:"Kubernetes: namespace of the build pod and the tunnel; default the service account's" group:"kubernetes" example:"ci"`
	KubernetesPod       string `envconfig:"PLUGIN_KUBERNETES_POD" desc:"Kubernetes: name of the build pod that owns the tunnel; default HOSTNAME (a name the kubelet cut to 63 characters is completed by the pod's IP)" group:"kubernetes" example:"harnessci-build-abc"`
	KubernetesService   string `envconfig:"PLUGIN_KUBERNETES_SERVICE" def:"false" desc:"Kubernetes: true to add a Service, so later steps use a stable DNS name instead of the pod IP (the start then waits for the kubelet's Ready condition, which the Service routes by: about 0.7 s more)" group:"kubernetes" example:"true"`
	CPURequest          string `envconfig:"PLUGIN_CPU_REQUEST" def:"100m" desc:"Kubernetes: CPU request of the tunnel pod" group:"kubernetes" example:"250m"`
	CPULimit            string `envconfig:"PLUGIN_CPU_LIMIT" def:"1" desc:"Kubernetes: CPU limit of the tunnel pod" group:"kubernetes" example:"2"`
	MemoryRequest       string `envconfig:"PLUGIN_MEMORY_REQUEST" def:"128Mi" desc:"Kubernetes: memory request of the tunnel pod" group:"kubernetes" example:"256Mi"`
	MemoryLimit         string `envconfig:"PLUGIN_MEMORY_LIMIT" def:"512Mi" desc:"Kubernetes: memory limit of the tunnel pod; SC's GOMEMLIMIT follows it" group:"kubernetes" example:"1Gi"`
	ImagePullSecret     string `envconfig:"PLUGIN_IMAGE_PULL_SECRET" desc:"Kubernetes: name of a docker-registry Secret for pulling the image" group:"kubernetes" example:"mirror-login"`
	NodeSelector        string `envconfig:"PLUGIN_KUBERNETES_NODE_SELECTOR" desc:"Kubernetes: node labels the tunnel pod must run on, a JSON object" group:"kubernetes" example:"{\"kubernetes.io/arch\": \"amd64\", \"pool\": \"ci\"}"`
	Tolerations         string `envconfig:"PLUGIN_KUBERNETES_TOLERATIONS" desc:"Kubernetes: taints the tunnel pod tolerates, a JSON list of Kubernetes tolerations" group:"kubernetes" example:"[{\"key\": \"ci\", \"operator\": \"Equal\", \"value\": \"true\", \"effect\": \"NoSchedule\"}]"`
	RunAsUser           string `envconfig:"PLUGIN_KUBERNETES_RUN_AS_USER" desc:"Kubernetes: a non-root uid to run SC as, with what the restricted Pod Security level asks of a pod (no privilege escalation, no capabilities, the runtime's default seccomp profile); for namespaces that enforce it" group:"kubernetes" example:"65532"`
	ServiceAccount      string `envconfig:"PLUGIN_KUBERNETES_SERVICE_ACCOUNT" desc:"Kubernetes: service account of the tunnel pod (its token is never mounted); default the namespace's default" group:"kubernetes" example:"sauce-connect"`

	ContainerName string `envconfig:"PLUGIN_CONTAINER_NAME" desc:"name of the SC container; default sauce-connect-<tunnel name>" group:"docker" example:"sauce-connect-web"`
	LogsFile      string `envconfig:"PLUGIN_LOGS_FILE" desc:"file where stop (and run) write SC's whole log" group:"essentials" example:"sauce-connect.log"`
	Debug         string `envconfig:"PLUGIN_DEBUG" def:"false" desc:"true for the plugin's own verbose logging" group:"tuning" example:"true"`
	LogFormat     string `envconfig:"PLUGIN_LOG_FORMAT" def:"text" desc:"text or json, for the plugin's own log lines" group:"tuning" example:"json"`
}

// LoadSettings reads the settings from the environment. A variable that is
// set but empty counts as unset. An INPUT_<NAME> stands in for a missing
// PLUGIN_<NAME> (a GitHub `uses: docker://` step passes only INPUT_*), and the
// credentials fall back to SAUCE_USERNAME / SAUCE_ACCESS_KEY.
func LoadSettings() (Settings, error) {
	var given, inputs Settings
	var sauce struct {
		Username   string `envconfig:"SAUCE_USERNAME"`
		AccessKey  Secret `envconfig:"SAUCE_ACCESS_KEY"`
		TunnelName string `envconfig:"SAUCE_TUNNEL_NAME"`
	}
	// Each variable is named in full in its tag: envconfig then never falls
	// back to a bare name (REGION, IMAGE, CONTAINER_NAME) another program set.
	asInputs := reflect.New(inputsType)
	for _, into := range []any{&given, asInputs.Interface(), &sauce} {
		if err := envconfig.Process("", into); err != nil {
			return Settings{}, fmt.Errorf("read settings: %w", err)
		}
	}
	inputs = asInputs.Elem().Convert(reflect.TypeFor[Settings]()).Interface().(Settings)
	s := firstSet(given, inputs, DefaultSettings())
	// The credentials may come as SC's own variables; a start hands its
	// tunnel's name on in SAUCE_TUNNEL_NAME (GitHub: GITHUB_ENV), so that
	// the job's later steps, its stop step among them, and its tests name
	// the same tunnel.
	s.Username = cmp.Or(strings.TrimSpace(s.Username), sauce.Username)
	s.AccessKey = cmp.Or(Secret(strings.TrimSpace(string(s.AccessKey))), sauce.AccessKey)
	s.TunnelName = cmp.Or(strings.TrimSpace(s.TunnelName), sauce.TunnelName)
	return s, nil
}

// inputsType is Settings read as GitHub passes a step's inputs:
// INPUT_<NAME> for each PLUGIN_<NAME>.
var inputsType = func() reflect.Type {
	t := reflect.TypeFor[Settings]()
	fields := make([]reflect.StructField, t.NumField())
	for i := range fields {
		f := t.Field(i)
		name := strings.TrimPrefix(f.Tag.Get("envconfig"), "PLUGIN_")
		f.Tag = reflect.StructTag(`envconfig:"INPUT_` + name + `"`)
		fields[i] = f
	}
	return reflect.StructOf(fields)
}()

// firstSet takes each setting from the first of layers where it is not
// blank: runners pass a setting nobody gave as an empty variable (Drone's
// settings, GitHub's inputs), so empty counts as unset.
func firstSet(layers ...Settings) Settings {
	var out Settings
	o := reflect.ValueOf(&out).Elem()
	for i := range o.NumField() {
		for _, l := range layers {
			if v := reflect.ValueOf(l).Field(i); strings.TrimSpace(v.String()) != "" {
				o.Field(i).Set(v)
				break
			}
		}
	}
	return out
}

// DefaultSettings returns the settings with every default applied and
// nothing else set.
func DefaultSettings() Settings {
	var s Settings
	v := reflect.ValueOf(&s).Elem()
	for i := range v.NumField() {
		v.Field(i).SetString(v.Type().Field(i).Tag.Get("def"))
	}
	return s
}

// settingInfo describes one setting for documentation.
type settingInfo struct {
	Name, Env, Default, Description string
	// Group is where the README lists it ("essentials" first); Required
	// says for which actions it must be set; Example is a real value.
	Group, Required, Example string
}

// settingsTable lists every setting in declaration order, from the tags.
func settingsTable() []settingInfo {
	t := reflect.TypeFor[Settings]()
	out := make([]settingInfo, 0, t.NumField())
	for i := range t.NumField() {
		tag := t.Field(i).Tag
		env := tag.Get("envconfig")
		out = append(out, settingInfo{
			Name:        strings.ToLower(strings.TrimPrefix(env, "PLUGIN_")),
			Env:         env,
			Default:     tag.Get("def"),
			Description: tag.Get("desc"),
			Group:       tag.Get("group"),
			Required:    tag.Get("required"),
			Example:     tag.Get("example"),
		})
	}
	return out
}
