package docker

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/internal/testenv"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

func TestContainerSpecGolden(t *testing.T) {
	now := testenv.GoldenTime
	drone := plugin.Pipeline{Drone: "true", DroneRepo: "octo/app", DroneBuildNumber: "42", DroneStageName: "default"}
	droneNet := &engine.Container{
		ID: "0123456789ab0123456789ab0123456789ab0123456789ab0123456789abcdef", Image: "drone-sauce-connect/drone-sauce-connect:1",
		ImageID:     "sha256:d5c0d5c0d5c0d5c0d5c0d5c0d5c0d5c0d5c0d5c0d5c0d5c0d5c0d5c0d5c0d5c0",
		NetworkMode: "drone-abc", Networks: map[string]engine.Endpoint{"drone-abc": {IP: "172.18.0.2"}},
		Mounts: map[string]string{"/var/run/docker.sock": "/var/run/docker.sock", "/drone/src": "/var/lib/docker/volumes/v1/_data"},
		Labels: map[string]string{"io.drone": "true", "io.drone.expires": "1795874400", "io.drone.build.number": "42", "org.opencontainers.image.title": "not copied"},
	}
	for _, tc := range []struct {
		name  string
		s     plugin.Settings
		p     plugin.Pipeline
		owner *engine.Container
		user  string
	}{
		{"host-defaults", plugin.Settings{}, plugin.Pipeline{}, nil, ""},
		{"drone-network", plugin.Settings{}, drone, droneNet, ""},
		{"all-options", plugin.Settings{
			TunnelName: "release-tunnel", TunnelPool: "true", Shared: "all", Proxy: "http://user:pw@proxy:3128", ProxySauce: "proxy:3128",
			ProxyLocalhost: "allow", TunnelDomains: "a.example,b.example", DenyDomains: "ads.example", TLSPassthroughDomains: "bank.example",
			LogLevel: "debug", SCArgs: "--log-http=api:url", Env: `{"SAUCE_DNS_SERVER":"1.1.1.1"}`, Labels: `{"team":"web"}`,
			Region: "eu", RESTURL: "https://api.eu-central-1.saucelabs.com", APIPort: "9000", APIHostPort: "0", Image: "mirror.example/sauce-connect:5.2", Network: "extra", Publish: "always",
		}, drone, droneNet, ""},
		{"host-network", plugin.Settings{NetworkMode: "host"}, plugin.Pipeline{GitHubActions: "true", GitHubRepository: "o/r", GitHubRunID: "1", GitHubRunAttempt: "1", GitHubJob: "j"}, nil, ""},
		{"secret-args", plugin.Settings{SCArgs: `--api-basic-auth u:PASS-B -H "Authorization: Bearer TOK-1" -HX-Two:TOK-2 --log-http=api:url -aUSER:PASS-A@up:3128`}, drone, droneNet, "65532"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testenv.SpecConfig(t, tc.s, tc.p)
			pl := attachments(c, tc.owner)
			pl.Deadline, pl.Labels, pl.ImageUser = expiry(c, tc.owner, now), platformLabels(tc.owner), tc.user
			spec := containerSpec(c, pl, now)
			if !hasSecret(spec, "SAUCE_ACCESS_KEY", testenv.TestKey) {
				t.Fatalf("SC would not get the access key through its environment: %+v", spec.Env)
			}
			for _, a := range spec.Cmd {
				if strings.Contains(a, testenv.TestKey) {
					t.Fatalf("access key in argv: %q", spec.Cmd)
				}
			}
			js, err := json.MarshalIndent(spec.Redacted(), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			trace := trace(spec)
			if strings.Contains(string(js)+trace, testenv.TestKey) || strings.Contains(trace, "user:pw") || strings.Contains(string(js)+trace, "PASS-") || strings.Contains(string(js)+trace, "TOK-") {
				t.Fatal("a secret reached the golden output, or SC's command line")
			}
			testenv.Golden(t, "spec-"+tc.name+".json", string(js)+"\n")
			testenv.Golden(t, "trace-"+tc.name+".txt", trace+"\n")
			if tc.owner != nil {
				dog, ok := watchdogSpec(c, *tc.owner, guardOf(c, tc.owner, tc.owner, pl), "5c0ffee5c0ffee5c0ffee5c0ffee5c0ffee5c0ffee5c0ffee5c0ffee5c0ffee5", pl.Deadline, now, engine.Access{Host: "unix:///var/run/docker.sock"})
				if !ok {
					t.Fatal("no watchdog for a container with the socket mounted")
				}
				js, _ := json.MarshalIndent(dog, "", "  ")
				testenv.Golden(t, "watchdog-"+tc.name+".json", string(js)+"\n")
			}
		})
	}
}

func hasSecret(s engine.ContainerSpec, name, value string) bool {
	for _, e := range s.Env {
		if e.Name == name {
			return e.Value == value && e.Secret
		}
	}
	return false
}

// TestWatchdogReachesTheEngineAsThePluginDoes: over TLS the watchdog gets
// the plugin's certificates as files copied in before it starts (the key
// 0400), never through its environment, labels or command line; on another
// socket path (rootless Docker, Podman) that socket, at that path.
func TestWatchdogReachesTheEngineAsThePluginDoes(t *testing.T) {
	now := testenv.GoldenTime
	c := testenv.SpecConfig(t, plugin.Settings{}, plugin.Pipeline{Drone: "true", DroneRepo: "octo/app", DroneBuildNumber: "42"})
	self := engine.Container{ID: "0123456789ab0123456789ab0123456789ab0123456789ab0123456789abcdef", ImageID: "sha256:d5c0", NetworkMode: "drone-abc",
		Mounts: map[string]string{"/run/user/1000/docker.sock": "/run/user/1000/docker.sock"}}
	const key = "-----BEGIN EC PRIVATE KEY-----\nSECRET-KEY-MATERIAL\n-----END EC PRIVATE KEY-----\n"
	tls := engine.Access{Host: "tcp://docker:2376", TLS: &engine.TLSFiles{Dir: "/certs/client", Verify: true, CA: []byte("ca"), Cert: []byte("cert"), Key: []byte(key)}}
	dog, ok := watchdogSpec(c, self, guard{Anchor: self.ID}, "5c0ffee5", now.Add(time.Hour), now, tls)
	if !ok {
		t.Fatal("no watchdog over TLS")
	}
	js, _ := json.MarshalIndent(dog, "", "  ")
	if strings.Contains(string(js)+trace(dog)+strings.Join(dog.Cmd, " "), "SECRET-KEY-MATERIAL") {
		t.Fatal("the private key is in the watchdog's spec, labels, command line or trace")
	}
	testenv.Golden(t, "watchdog-tls.json", string(js)+"\n")
	files := map[string]engine.File{}
	for _, f := range dog.Files {
		files[f.Path] = f
	}
	if k := files[watchdogCerts+"/key.pem"]; string(k.Content) != key || k.Mode != 0o400 || len(files) != 3 {
		t.Errorf("the watchdog does not get the TLS files (key mode %o): %v", k.Mode, dog.Files)
	}

	rootless := engine.Access{Host: "unix:///run/user/1000/docker.sock"}
	dog, ok = watchdogSpec(c, self, guard{Anchor: self.ID}, "5c0ffee5", now.Add(time.Hour), now, rootless)
	if !ok || len(dog.Mounts) != 1 || dog.Mounts[0].Target != "/run/user/1000/docker.sock" || dog.Env[0] != (engine.EnvVar{Name: "DOCKER_HOST", Value: rootless.Host}) {
		t.Errorf("the watchdog does not reach the engine at %s: mounts %v, env %v", rootless.Host, dog.Mounts, dog.Env)
	}
	if _, ok := watchdogSpec(c, self, guard{}, "5c0ffee5", now.Add(time.Hour), now, engine.Access{Host: engine.DefaultHost}); ok {
		t.Error("a watchdog without the socket the plugin uses")
	}
}

// TestSCFileHoldsTheSecretArgs: the secret options of sc_args reach SC in
// its config file (a repeated one as a list), config_file's options with
// them, and the rest stay flags.
func TestSCFileHoldsTheSecretArgs(t *testing.T) {
	c := testenv.SpecConfig(t, plugin.Settings{SCArgs: `--api-basic-auth u:PASS-B -H "Authorization: Bearer TOK-1" -HX-Two:TOK-2 --log-http=api:url`}, plugin.Pipeline{})
	c.ConfigFile, c.FileYAML = "/w/sc.yaml", map[string]any{"dns-server": "1.1.1.1", "header": "X-From-File: 1"}
	args, file := plugin.SCFile(c)
	if strings.Join(args, " ") != "--log-http=api:url" {
		t.Errorf("flags left: %q", args)
	}
	want := "api-basic-auth: u:PASS-B\ndns-server: 1.1.1.1\nheader:\n    - 'Authorization: Bearer TOK-1'\n    - X-Two:TOK-2\n"
	if string(file) != want {
		t.Errorf("file:\n%s\nwant:\n%s", file, want)
	}
	if f := configFile(file, "65532"); f.Mode != 0o400 || f.UID != 65532 || f.GID != 65532 {
		t.Errorf("for USER 65532: %+v", f)
	}
	if f := configFile(file, "nonroot"); f.Mode != 0o444 {
		t.Errorf("for a named user: %+v", f)
	}
	if f := configFile(file, ""); f.Mode != 0o400 || f.UID != 0 {
		t.Errorf("for root: %+v", f)
	}
}
