package plugin

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// clearSettings sets every setting variable to empty (which counts as unset),
// so the test sees only what it sets; t.Setenv restores them afterwards.
func clearSettings(t *testing.T) {
	t.Helper()
	for _, s := range settingsTable() {
		t.Setenv(s.Env, "")
		t.Setenv("INPUT_"+strings.ToUpper(s.Name), "")
	}
	t.Setenv("SAUCE_USERNAME", "")
	t.Setenv("SAUCE_ACCESS_KEY", "")
}

func load(t *testing.T, env map[string]string) (Config, error) {
	t.Helper()
	clearSettings(t)
	t.Setenv("PLUGIN_REGION", "us-west")
	for k, v := range env {
		t.Setenv(k, v)
	}
	s, err := LoadSettings()
	if err != nil {
		t.Fatalf("LoadSettings: %v", err)
	}
	return s.Config(Pipeline{Drone: "true", DroneRepo: "octo/app", DroneBuildNumber: "7", DroneStageName: "e2e"}, "host", "r4nd")
}

// TestDefaultImageIsAnExactTag: the default SC image is Sauce's repository
// at an exact SC5 version tag (x.y.z), as Sauce's Docker page documents
// them; a moving tag would change the SC a pipeline runs under its feet.
func TestDefaultImageIsAnExactTag(t *testing.T) {
	if img := DefaultSettings().Image; !regexp.MustCompile(`^saucelabs/sauce-connect:5\.\d+\.\d+$`).MatchString(img) {
		t.Errorf("the default image %q is not saucelabs/sauce-connect at an exact 5.x.y tag", img)
	}
}

func TestDefaults(t *testing.T) {
	c, err := load(t, map[string]string{"PLUGIN_USERNAME": "alice", "PLUGIN_ACCESS_KEY": "k"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"action": c.Action == ActionStart, "region": c.Region == "us-west", "image": c.Image == DefaultSettings().Image,
		"pull": c.Pull == "if-not-exists", "api_port": c.APIPort == 8032, "api_host_port": c.APIHostPort == 8032,
		"api_bind": c.APIBind == "127.0.0.1", "ready_timeout": c.ReadyTimeout == 3*time.Minute,
		"stop_timeout": c.StopTimeout == 30*time.Second, "retries": c.Retries == 3, "publish": c.Publish == "auto",
		"network_alias": c.NetworkAlias == "sauce-connect", "log_level": c.LogLevel == "",
		"tunnel_name": c.TunnelName == "octo-app-7-e2e", "container_name": c.ContainerName == "sauce-connect-octo-app-7-e2e",
	}
	for k, ok := range want {
		if ok != true {
			t.Errorf("default of %s is wrong: %+v", k, c)
		}
	}
}

func TestSetButEmptyIsUnset(t *testing.T) {
	c, err := load(t, map[string]string{"PLUGIN_USERNAME": "alice", "PLUGIN_ACCESS_KEY": "k", "PLUGIN_READY_TIMEOUT": "", "PLUGIN_RETRIES": " "})
	if err != nil {
		t.Fatal(err)
	}
	if c.ReadyTimeout != 3*time.Minute || c.Retries != 3 {
		t.Errorf("empty settings did not take defaults: %v %d", c.ReadyTimeout, c.Retries)
	}
	// Region has no default: SC5 requires one, and a wrong one fails late.
	_, err = load(t, map[string]string{"PLUGIN_USERNAME": "alice", "PLUGIN_ACCESS_KEY": "k", "PLUGIN_REGION": " "})
	if want := "invalid setting region (PLUGIN_REGION): missing; set it to the Sauce Labs data centre of your account: us-west, us-east or eu-central"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

func TestFallbacks(t *testing.T) {
	clearSettings(t)
	t.Setenv("SAUCE_USERNAME", "bob")
	t.Setenv("SAUCE_ACCESS_KEY", "from-env")
	t.Setenv("INPUT_REGION", "eu")
	t.Setenv("INPUT_TUNNEL_NAME", "from-input")
	t.Setenv("INPUT_IMAGE", "mirror.example/sc:5")
	s, err := LoadSettings()
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Config(Pipeline{}, "h", "r")
	if err != nil {
		t.Fatal(err)
	}
	if c.Username != "bob" || c.AccessKey != "from-env" || c.Region != "eu-central" || c.TunnelName != "from-input" || c.Image != "mirror.example/sc:5" {
		t.Errorf("fallbacks not applied: %s %s %s", c.Username, c.Region, c.TunnelName)
	}
}

// A variable of a setting's bare name (REGION, CONTAINER_NAME), which
// another program may have set, is no setting; PLUGIN_ wins over INPUT_.
func TestOnlyTheSettingsOwnVariablesCount(t *testing.T) {
	clearSettings(t)
	// Unset, not empty (envconfig looks further only for an unset one);
	// clearSettings' t.Setenv restores them.
	for _, name := range []string{"PLUGIN_CONTAINER_NAME", "PLUGIN_REGION", "INPUT_CONTAINER_NAME", "INPUT_REGION"} {
		os.Unsetenv(name)
	}
	t.Setenv("CONTAINER_NAME", "someone-elses")
	t.Setenv("REGION", "eu")
	t.Setenv("IMAGE", "not/this:1")
	t.Setenv("PLUGIN_IMAGE", "mine:5")
	t.Setenv("INPUT_IMAGE", "input:5")
	s, err := LoadSettings()
	if err != nil {
		t.Fatal(err)
	}
	d := DefaultSettings()
	if s.ContainerName != d.ContainerName || s.Region != d.Region || s.Image != "mine:5" {
		t.Errorf("container_name %q, region %q, image %q: want the defaults and PLUGIN_IMAGE", s.ContainerName, s.Region, s.Image)
	}
}

func TestRegions(t *testing.T) {
	for in, want := range map[string]string{
		"us-west": "us-west", "US-WEST-1": "us-west", "us": "us-west", "us-east": "us-east", "us-east-4": "us-east",
		"eu-central": "eu-central", "eu-central-1": "eu-central", " eu ": "eu-central",
	} {
		c, err := load(t, map[string]string{"PLUGIN_ACTION": "stop", "PLUGIN_REGION": in})
		if err != nil || c.Region != want {
			t.Errorf("region %q: got %q, %v; want %q", in, c.Region, err, want)
		}
	}
}

func TestEveryProblemAtOnce(t *testing.T) {
	_, err := load(t, map[string]string{
		"PLUGIN_ACTION": "start", "PLUGIN_REGION": "mars", "PLUGIN_READY_TIMEOUT": "soon",
		"PLUGIN_ENV": `{"HTTP_PROXY":"x"}`, "PLUGIN_LABELS": `{"io.drone-sauce-connect.managed":"no"}`,
		"PLUGIN_PULL": "sometimes", "PLUGIN_API_HOST_PORT": "70000", "PLUGIN_TUNNEL_POOL": "yes please",
	})
	want := strings.Join([]string{
		`invalid setting username (PLUGIN_USERNAME): missing; set it (or SAUCE_USERNAME) to your Sauce Labs username`,
		`invalid setting access_key (PLUGIN_ACCESS_KEY): missing; set it from a secret (or SAUCE_ACCESS_KEY) to your Sauce Labs access key`,
		`invalid setting region (PLUGIN_REGION): "mars" is not a Sauce Labs region; use us-west, us-east or eu-central`,
		`invalid setting tunnel_pool (PLUGIN_TUNNEL_POOL): "yes please" is not a boolean; use true or false`,
		`invalid setting env (PLUGIN_ENV): variable "HTTP_PROXY" does not start with SAUCE_; only Sauce Connect's own variables may be set`,
		`invalid setting labels (PLUGIN_LABELS): label "io.drone-sauce-connect.managed" uses the prefix io.drone-sauce-connect., which the plugin reserves; pick another key`,
		`invalid setting pull (PLUGIN_PULL): "sometimes" is not one of if-not-exists, always, never`,
		`invalid setting api_host_port (PLUGIN_API_HOST_PORT): "70000" is not a port; use a number from 0 to 65535`,
		`invalid setting ready_timeout (PLUGIN_READY_TIMEOUT): "soon" is not a positive duration; use e.g. 90s, 3m or 1h`,
	}, "\n")
	if err == nil {
		t.Fatal("no error")
	}
	if diff := cmp.Diff(want, err.Error()); diff != "" {
		t.Errorf("messages (-want +got):\n%s", diff)
	}
	if ExitCode(err) != ExitSettings {
		t.Errorf("exit code %d, want %d", ExitCode(err), ExitSettings)
	}
}

func TestSingleProblems(t *testing.T) {
	base := map[string]string{"PLUGIN_USERNAME": "u", "PLUGIN_ACCESS_KEY": "k"}
	for _, tc := range []struct {
		name, key, value, want string
	}{
		{"unknown action", "PLUGIN_ACTION", "open", `invalid setting action (PLUGIN_ACTION): "open" is not an action; use start, stop, run, status or wait`},
		{"bare seconds are fine but zero is not", "PLUGIN_STOP_TIMEOUT", "0", `invalid setting stop_timeout (PLUGIN_STOP_TIMEOUT): "0" is not a positive duration; use e.g. 90s, 3m or 1h`},
		{"env not json", "PLUGIN_ENV", "SAUCE_X=1", `invalid setting env (PLUGIN_ENV): not a JSON object (invalid character 'S' looking for beginning of value); use e.g. {"KEY": "value"}`},
		{"credentials through env", "PLUGIN_ENV", `{"SAUCE_ACCESS_KEY":"x"}`, `invalid setting env (PLUGIN_ENV): SAUCE_ACCESS_KEY is set by the plugin; use the access_key setting instead`},
		{"shared", "PLUGIN_SHARED", "team", `invalid setting shared (PLUGIN_SHARED): "team" is not supported; SC5 takes only all`},
		{"proxy_localhost", "PLUGIN_PROXY_LOCALHOST", "yes", `invalid setting proxy_localhost (PLUGIN_PROXY_LOCALHOST): "yes" is not one of allow, deny, direct`},
		{"tunnel name", "PLUGIN_TUNNEL_NAME", "my tunnel", `invalid setting tunnel_name (PLUGIN_TUNNEL_NAME): "my tunnel" has characters or a length SC and Docker cannot take; use at most 80 letters, digits, '.', '_' or '-'`},
		{"config file", "PLUGIN_CONFIG_FILE", "missing.yaml", `invalid setting config_file (PLUGIN_CONFIG_FILE): "missing.yaml" does not exist; give the path of an SC5 YAML file in the workspace`},
		{"api_bind", "PLUGIN_API_BIND", "localhost", `invalid setting api_bind (PLUGIN_API_BIND): "localhost" is not an IP address; use 127.0.0.1 (the default) or 0.0.0.0`},
		{"API address through env", "PLUGIN_ENV", `{"SAUCE_API_ADDRESS":":9999"}`, `invalid setting env (PLUGIN_ENV): SAUCE_API_ADDRESS is set by the plugin; use the api_port setting instead`},
		{"tunnel name through sc_args", "PLUGIN_SC_ARGS", `-i other-name`, `invalid setting sc_args (PLUGIN_SC_ARGS): -i is set by the plugin; use the tunnel_name setting instead`},
		{"region through sc_args", "PLUGIN_SC_ARGS", `--region=eu-central`, `invalid setting sc_args (PLUGIN_SC_ARGS): --region is set by the plugin; use the region setting instead`},
		{"metadata through env", "PLUGIN_ENV", `{"SAUCE_METADATA":"team=web"}`, `invalid setting env (PLUGIN_ENV): SAUCE_METADATA is set by the plugin; remove it (the plugin's runner metadata names the CI platform)`},
		{"node selector", "PLUGIN_KUBERNETES_NODE_SELECTOR", `pool=ci`, `invalid setting kubernetes_node_selector (PLUGIN_KUBERNETES_NODE_SELECTOR): not a JSON object (invalid character 'p' looking for beginning of value); use e.g. {"KEY": "value"}`},
		{"toleration field", "PLUGIN_KUBERNETES_TOLERATIONS", `[{"key":"ci","effects":"NoSchedule"}]`, `invalid setting kubernetes_tolerations (PLUGIN_KUBERNETES_TOLERATIONS): not a JSON list of tolerations (json: unknown field "effects"); use e.g. [{"key": "ci", "operator": "Exists", "effect": "NoSchedule"}]`},
		{"toleration operator", "PLUGIN_KUBERNETES_TOLERATIONS", `[{"key":"ci","operator":"In"}]`, `invalid setting kubernetes_tolerations (PLUGIN_KUBERNETES_TOLERATIONS): item 1: operator "In" is not Equal or Exists`},
		{"toleration Exists with a value", "PLUGIN_KUBERNETES_TOLERATIONS", `[{"key":"ci","operator":"Exists","value":"true"}]`, `invalid setting kubernetes_tolerations (PLUGIN_KUBERNETES_TOLERATIONS): item 1: operator Exists takes no value; remove "value"`},
		{"toleration without key", "PLUGIN_KUBERNETES_TOLERATIONS", `[{"value":"x"}]`, `invalid setting kubernetes_tolerations (PLUGIN_KUBERNETES_TOLERATIONS): item 1: no key; give a key, or operator Exists to tolerate every taint`},
		{"toleration effect", "PLUGIN_KUBERNETES_TOLERATIONS", `[{"key":"ci","effect":"NoRun"}]`, `invalid setting kubernetes_tolerations (PLUGIN_KUBERNETES_TOLERATIONS): item 1: effect "NoRun" is not NoSchedule, PreferNoSchedule or NoExecute`},
		{"toleration seconds", "PLUGIN_KUBERNETES_TOLERATIONS", `[{"key":"ci","effect":"NoSchedule","tolerationSeconds":5}]`, `invalid setting kubernetes_tolerations (PLUGIN_KUBERNETES_TOLERATIONS): item 1: tolerationSeconds needs effect NoExecute`},
		{"service account", "PLUGIN_KUBERNETES_SERVICE_ACCOUNT", `Sauce_Connect`, `invalid setting kubernetes_service_account (PLUGIN_KUBERNETES_SERVICE_ACCOUNT): "Sauce_Connect" is not a service account name; use lowercase letters, digits, '-' and '.'`},
		{"run as root", "PLUGIN_KUBERNETES_RUN_AS_USER", "0", `invalid setting kubernetes_run_as_user (PLUGIN_KUBERNETES_RUN_AS_USER): "0" is not a non-root uid; use a number from 1 to 2147483647 that the image can run as, e.g. 65532`},
		{"api_url without wait", "PLUGIN_API_URL", "http://sauce-connect:8032", `invalid setting api_url (PLUGIN_API_URL): is only for action wait, whose Sauce Connect the pipeline runs itself; remove it, or set action: wait`},
		{"sc_args", "PLUGIN_SC_ARGS", `["--a", 1]`, `invalid setting sc_args (PLUGIN_SC_ARGS): not a JSON array of strings: json: cannot unmarshal number into Go value of type string; give a JSON array of strings, or arguments separated by spaces with values quoted as in a shell`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{tc.key: tc.value}
			for k, v := range base {
				env[k] = v
			}
			_, err := load(t, env)
			if err == nil || err.Error() != tc.want {
				t.Errorf("got  %v\nwant %s", err, tc.want)
			}
		})
	}
}

func TestWaitSettings(t *testing.T) {
	// Nothing of SC's is required: the pipeline runs SC itself.
	c, err := load(t, map[string]string{"PLUGIN_ACTION": "wait"})
	if err != nil || c.APIURL != defaultAPIURL {
		t.Fatalf("got %v, api_url %q", err, c.APIURL)
	}
	c, err = load(t, map[string]string{"PLUGIN_ACTION": "wait", "PLUGIN_API_URL": "http://sauce-connect:9000/"})
	if err != nil || c.APIURL != "http://sauce-connect:9000" {
		t.Fatalf("got %v, api_url %q", err, c.APIURL)
	}
	for _, bad := range []string{"sauce-connect:8032", "ftp://sc:8032", "http://sc:8032/readyz", "http://"} {
		_, err := load(t, map[string]string{"PLUGIN_ACTION": "wait", "PLUGIN_API_URL": bad})
		if err == nil || !strings.Contains(err.Error(), "invalid setting api_url (PLUGIN_API_URL): ") || ExitCode(err) != ExitSettings {
			t.Errorf("api_url %q: got %v", bad, err)
		}
	}
}

func TestSCArgs(t *testing.T) {
	for in, want := range map[string][]string{
		`["--log-http=api:url", "--dns-server", "1.1.1.1"]`: {"--log-http=api:url", "--dns-server", "1.1.1.1"},
		"--log-http=api:url --dns-timeout 5s":               {"--log-http=api:url", "--dns-timeout", "5s"},
		"--tunnel-domains=a.com,b.com,--log-level=debug":    {"--tunnel-domains=a.com,b.com", "--log-level=debug"},
		`--header "Authorization: Bearer tok" -H'X-A: 1'`:   {"--header", "Authorization: Bearer tok", "-HX-A: 1"},
		`--header=Authorization:\ Bearer\ tok "a\"b" ''`:    {"--header=Authorization: Bearer tok", `a"b`, ""},
		`--tls-resign-domains "a,-b",--dns-server=1.1.1.1`:  {"--tls-resign-domains", "a,-b", "--dns-server=1.1.1.1"},
	} {
		got, err := splitArgs(in)
		if err != nil || !cmp.Equal(got, want) {
			t.Errorf("splitArgs(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{`--header "open`, `-H 'open`} {
		if _, err := splitArgs(bad); err == nil {
			t.Errorf("splitArgs(%q) took an unclosed quote", bad)
		}
	}
}

// TestSCArgsAsSCReadsThem: sc_args are read with SC's own rules (pflag:
// -k v, -kv, -k=v, --key v, --key=v, bundled booleans, repeats): an option
// the plugin sets is refused in every form, naming the option and never
// its value; every secret form is masked.
// TestDurations: a bare number of seconds too large for a duration, a
// stop_timeout under a second (the engine counts whole seconds), and a
// max_lifetime shorter than ready_timeout are refused with one line each;
// a fraction of a second rounds stop_timeout up.
func TestDurations(t *testing.T) {
	for env, want := range map[string]string{
		"PLUGIN_READY_TIMEOUT=18446744074": `invalid setting ready_timeout (PLUGIN_READY_TIMEOUT): "18446744074" is not a positive duration`,
		"PLUGIN_STOP_TIMEOUT=500ms":        "invalid setting stop_timeout (PLUGIN_STOP_TIMEOUT): 500ms is less than a second",
		"PLUGIN_MAX_LIFETIME=1m":           "invalid setting max_lifetime (PLUGIN_MAX_LIFETIME): 1m0s is shorter than ready_timeout (3m0s)",
	} {
		k, v, _ := strings.Cut(env, "=")
		_, err := load(t, map[string]string{k: v, "PLUGIN_USERNAME": "u", "PLUGIN_ACCESS_KEY": "k"})
		if err == nil || !strings.HasPrefix(err.Error(), want) || strings.Contains(err.Error(), "\n") || ExitCode(err) != ExitSettings {
			t.Errorf("%s: %v", env, err)
		}
	}
	c, err := load(t, map[string]string{"PLUGIN_STOP_TIMEOUT": "1500ms", "PLUGIN_READY_TIMEOUT": "9223372036", "PLUGIN_USERNAME": "u", "PLUGIN_ACCESS_KEY": "k"})
	if err != nil || c.StopTimeout != 2*time.Second || c.ReadyTimeout != 9223372036*time.Second {
		t.Errorf("stop_timeout %s, ready_timeout %s, %v", c.StopTimeout, c.ReadyTimeout, err)
	}
}

func TestSCArgsAsSCReadsThem(t *testing.T) {
	for _, owned := range []string{"-kOTHER", "-k OTHER", "-k=OTHER", "--access-key=OTHER", "--access-key OTHER", "-rEU", "-iother", "-ti other", "--tunnel-pool", "-tT x"} {
		_, err := load(t, map[string]string{"PLUGIN_SC_ARGS": owned, "PLUGIN_USERNAME": "u", "PLUGIN_ACCESS_KEY": "k"})
		if err == nil || ExitCode(err) != ExitSettings || !strings.HasPrefix(err.Error(), "invalid setting sc_args (PLUGIN_SC_ARGS): -") || !strings.Contains(err.Error(), " is set by the plugin; use the ") || strings.Contains(err.Error(), "OTHER") {
			t.Errorf("sc_args %q: %v", owned, err)
		}
	}
	for _, missing := range []string{"--header", "-H", "--log-http=api:url -a"} {
		if _, err := load(t, map[string]string{"PLUGIN_SC_ARGS": missing}); err == nil || !strings.Contains(err.Error(), "needs a value") {
			t.Errorf("sc_args %q without its value: %v", missing, err)
		}
	}
	if _, err := load(t, map[string]string{"PLUGIN_SC_ARGS": "--dns-server 1.1.1.1", "PLUGIN_ENV": `{"SAUCE_DNS_SERVER": "8.8.8.8"}`}); err == nil || !strings.Contains(err.Error(), "--dns-server is set in env too (SAUCE_DNS_SERVER)") {
		t.Errorf("an option in sc_args and env: %v", err)
	}
	args := `-aUSER1:PASS-A1@host:1 --auth=u2:PASS-A2@h:2 -H "Authorization: Bearer TOK-H1" -HX-Token:TOK-H2 --api-basic-auth u:PASS-B1 --pac=http://p:PASS-X%40Y@pac/x.pac`
	c, err := load(t, map[string]string{"PLUGIN_SC_ARGS": args, "PLUGIN_USERNAME": "u", "PLUGIN_ACCESS_KEY": "k"})
	if err != nil {
		t.Fatal(err)
	}
	m := NewMasker(c.Secrets()...)
	line := strings.Join(c.SCArgs, " ") + " PASS-X@Y"
	for _, secret := range []string{"PASS-A1", "PASS-A2", "TOK-H1", "TOK-H2", "PASS-B1", "PASS-X%40Y", "PASS-X@Y"} {
		if strings.Contains(m.String(line), secret) {
			t.Errorf("%s is not masked in %q", secret, m.String(line))
		}
	}
}

func TestSecretNeverFormats(t *testing.T) {
	s := Settings{AccessKey: "sekrit-value", RegistryPassword: "pw-value"}
	for _, out := range []string{fmtV(s), fmtPlusV(s), fmtSharpV(s)} {
		if strings.Contains(out, "sekrit-value") || strings.Contains(out, "pw-value") {
			t.Errorf("secret printed: %s", out)
		}
	}
}

// TestPostStep: GitHub's post step (the binary under its post name) stops
// what its main step started, by the saved name or else the same derived
// name, needs no credentials, and never starts a tunnel.
func TestPostStep(t *testing.T) {
	gh := Pipeline{GitHubActions: "true", GitHubRepository: "acme/web", GitHubRunID: "9", GitHubRunAttempt: "1", GitHubJob: "e2e", PostStep: true}
	for _, tc := range []struct {
		action string
		saved  string
		want   Action
		tunnel string
	}{
		{"start", "", ActionStop, "acme-web-9-1-e2e"},
		{"start", "saved-name", ActionStop, "saved-name"},
		{"run", "", ActionStop, "acme-web-9-1-e2e"},
		{"stop", "", ActionNone, "acme-web-9-1-e2e"},
		{"status", "", ActionNone, "acme-web-9-1-e2e"},
	} {
		s := DefaultSettings()
		s.Action = tc.action
		p := gh
		p.StateTunnelName = tc.saved
		c, err := s.Config(p, "h", "r")
		if err != nil {
			t.Errorf("%s: %v", tc.action, err)
			continue
		}
		if c.Action != tc.want || c.TunnelName != tc.tunnel {
			t.Errorf("post step after %s (saved %q): action %s, tunnel %s; want %s, %s", tc.action, tc.saved, c.Action, c.TunnelName, tc.want, tc.tunnel)
		}
	}
	// The main step of a later use of the action sees no post phase.
	s := DefaultSettings()
	s.Username, s.AccessKey, s.Region = "u", "k", "us-west"
	main := gh
	main.PostStep, main.StateTunnelName = false, "saved-name"
	if c, err := s.Config(main, "h", "r"); err != nil || c.Action != ActionStart {
		t.Errorf("a main step with saved state: action %s, %v; want start", c.Action, err)
	}
}

// TestConfigFile: SC5 ranks variables over the file, so the plugin passes
// nothing the file sets and refuses a file that sets what it owns.
func TestConfigFile(t *testing.T) {
	dir := t.TempDir()
	write := func(text string) string {
		path := filepath.Join(dir, testName(t)+".yaml")
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	base := map[string]string{"PLUGIN_USERNAME": "u", "PLUGIN_ACCESS_KEY": "k", "PLUGIN_REGION": ""}

	env := maps.Clone(base)
	env["PLUGIN_CONFIG_FILE"] = write("region: eu-central\nlog-level: debug\nmetadata: team=web\ntunnel-domains: [\".*\\\\.example\"]\n")
	c, err := load(t, env)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{}
	for _, e := range SCEnv(c, ":8032") {
		names[e.Name] = e.Value
	}
	if c.Region != "eu-central" || names["SAUCE_REGION"] != "eu-central" {
		t.Errorf("the file's region is not the tunnel's: %q, SAUCE_REGION=%q", c.Region, names["SAUCE_REGION"])
	}
	for _, v := range []string{"SAUCE_LOG_LEVEL", "SAUCE_METADATA", "SAUCE_TUNNEL_DOMAINS"} {
		if _, ok := names[v]; ok {
			t.Errorf("%s would override the file's value", v)
		}
	}

	for text, want := range map[string]string{
		"region: us-east\n":   "invalid setting config_file (PLUGIN_CONFIG_FILE): sets region us-east, but the region setting is us-west; set it in one place",
		"tunnel-name: mine\n": "invalid setting config_file (PLUGIN_CONFIG_FILE): sets tunnel-name, which the plugin sets from the tunnel_name setting; remove it from the file",
		"access-key: abc\n":   "invalid setting config_file (PLUGIN_CONFIG_FILE): sets access-key; keep the credentials in secrets, in the username and access_key settings",
		"proxy: corp:3128\n":  "invalid setting config_file (PLUGIN_CONFIG_FILE): sets proxy, and so does the proxy setting; set it in one place",
		"- not\n- a map\n":    "invalid setting config_file (PLUGIN_CONFIG_FILE): ",
	} {
		env := maps.Clone(base)
		env["PLUGIN_REGION"], env["PLUGIN_PROXY"] = "us-west", "other:3128"
		env["PLUGIN_CONFIG_FILE"] = write(text)
		if _, err := load(t, env); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("file %q: got %v\nwant %s", text, err, want)
		}
	}
}

var testNames int

func testName(t *testing.T) string {
	testNames++
	return fmt.Sprintf("f%d", testNames)
}

// TestRunnerProxy: a runner's HTTPS_PROXY / HTTP_PROXY is SC's way to Sauce
// Labs unless proxy_sauce is set or NO_PROXY exempts saucelabs.com.
func TestRunnerProxy(t *testing.T) {
	for _, tc := range []struct {
		name       string
		p          Pipeline
		setting    string
		want, from string
	}{
		{"https first", Pipeline{HTTPSProxy: "http://corp:3128", HTTPProxy: "http://other:3128"}, "", "http://corp:3128", "HTTPS_PROXY"},
		{"http alone", Pipeline{HTTPProxy: "http://other:3128"}, "", "http://other:3128", "HTTP_PROXY"},
		{"the setting wins", Pipeline{HTTPSProxy: "http://corp:3128"}, "mine:8080", "mine:8080", ""},
		{"NO_PROXY exempts sauce", Pipeline{HTTPSProxy: "http://corp:3128", NoProxy: "localhost, .saucelabs.com"}, "", "", ""},
		{"NO_PROXY *", Pipeline{HTTPSProxy: "http://corp:3128", NoProxy: "*"}, "", "", ""},
		{"NO_PROXY elsewhere", Pipeline{HTTPSProxy: "http://corp:3128", NoProxy: "example.com,notsaucelabs.com"}, "", "http://corp:3128", "HTTPS_PROXY"},
	} {
		s := DefaultSettings()
		s.Username, s.AccessKey, s.Region, s.ProxySauce = "u", "k", "us-west", tc.setting
		c, err := s.Config(tc.p, "h", "r")
		if err != nil || c.ProxySauce != tc.want || c.ProxySauceFrom != tc.from {
			t.Errorf("%s: proxy_sauce %q from %q (%v); want %q from %q", tc.name, c.ProxySauce, c.ProxySauceFrom, err, tc.want, tc.from)
		}
	}
}
