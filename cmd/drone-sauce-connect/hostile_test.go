package main_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drone-sauce-connect/drone-sauce-connect/internal/testenv"
)

// TestBehindACorporateProxy: the runner hands every step HTTP_PROXY,
// HTTPS_PROXY and a NO_PROXY that does not name SC's addresses, and the
// proxy (a real forward proxy on this machine, logging what it carries)
// cannot reach a container's address. Under drone exec, with SC's image in
// both shapes (a HEALTHCHECK the engine reports, and none, as Sauce
// documents none): the start, the tests step and the stop pass; the
// plugin's calls to Sauce's REST API (the double) go through the proxy, and
// no request for SC's API does.
func TestBehindACorporateProxy(t *testing.T) {
	skipShort(t)
	for _, image := range []string{standin, standinPlain} {
		t.Run(strings.Split(image, ":")[0], func(t *testing.T) {
			t.Parallel()
			api := sauceAccount(t)
			host, err := testenv.HostAddress(func(args ...string) (string, error) { return dockerCLI(args...) })
			if err != nil {
				t.Fatal(err)
			}
			proxy, err := testenv.StartProxy(host)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(proxy.Stop)
			b := newDroneBuild(t, "drone.yml")
			proxied := map[string]any{"HTTP_PROXY": proxy.URL, "HTTPS_PROXY": proxy.URL, "NO_PROXY": "localhost,127.0.0.1"}
			for _, name := range []string{"sauce-connect", "stop-sauce-connect"} {
				step := b.step(name)
				step["environment"] = proxied
				settings := step["settings"].(map[string]any)
				settings["rest_url"] = api.URL
				if name == "sauce-connect" {
					settings["image"] = image
					settings["env"] = map[string]any{"SAUCE_STANDIN_READY_DELAY": "300ms", "SAUCE_STANDIN_REST_URL": api.URL}
				}
			}
			b.run()
			out := b.out.String()
			if !strings.Contains(out, "confirmed by Sauce Labs") {
				t.Errorf("the tunnel was not confirmed through the proxy:\n%s", out)
			}
			carried := strings.Join(proxy.Requests(), "\n")
			if !strings.Contains(carried, api.URL+"/rest/v1/alice/tunnels") {
				t.Errorf("the REST API was not asked through the runner's proxy; it carried:\n%s", carried)
			}
			for _, sc := range []string{":8032", "/readyz", "/info"} {
				if strings.Contains(carried, sc) {
					t.Errorf("a request for SC's API went to the proxy (%s):\n%s", sc, carried)
				}
			}
			b.assertClean()
		})
	}
}

// TestSecretsInEveryFormStayHidden: secrets in every form SC takes (the
// access key, sc_args' --auth, --api-basic-auth and --header in their
// short, attached and quoted forms, a config_file's, a proxy URL's
// password) appear in no output, on no command line of this machine
// (/proc/*/cmdline, while the tunnel runs), and in no docker inspect but
// in SC's own environment; SC's image runs as a non-root user without a
// HEALTHCHECK, reads its config file, and the probe and the status step
// send the API's basic auth found in sc_args.
func TestSecretsInEveryFormStayHidden(t *testing.T) {
	skipShort(t)
	secrets := []string{accessKey, "AUTH-PASS-77", "API-PASS-78", "HDR-TOK-79", "FILE-TOK-80", "PROXY-PASS-81"}
	dir := t.TempDir()
	file := filepath.Join(dir, "sc.yaml")
	if err := os.WriteFile(file, []byte("header: 'X-From-File: FILE-TOK-80'\ndns-timeout: 5s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tunnel := "secrets-" + testenv.Random(6)
	t.Cleanup(func() { testenv.RemoveTunnel(eng, tunnel) })
	env := []string{"PLUGIN_TUNNEL_NAME=" + tunnel, "PLUGIN_IMAGE=" + standinPlain, "PLUGIN_CONFIG_FILE=" + file,
		"PLUGIN_PROXY=http://corp:PROXY-PASS-81@127.0.0.1:3128",
		`PLUGIN_SC_ARGS=-auser:AUTH-PASS-77@upstream:3128 --api-basic-auth=api:API-PASS-78 -H "Authorization: Bearer HDR-TOK-79"`,
		`PLUGIN_ENV={"SAUCE_STANDIN_READY_DELAY":"300ms","SAUCE_STANDIN_LEAK_KEY":"true"}`}
	start := startBinary(t, env...)
	if code := start.wait(t); code != 0 {
		t.Fatalf("start exited %d:\n%s", code, start.output())
	}
	status := startBinary(t, "PLUGIN_TUNNEL_NAME="+tunnel, "PLUGIN_ACTION=status", "PLUGIN_ACCESS_KEY=", "PLUGIN_SC_ARGS=")
	if code := status.wait(t); code != 0 || !strings.Contains(status.output(), "ready:     yes") {
		t.Fatalf("status, which knows no secret but SC's, exited %d:\n%s", code, status.output())
	}
	cmdlines := procCmdlines(t)
	sc := onlyContainer(t, eng, tunnel)
	inspect, err := dockerCLI("inspect", sc)
	if err != nil {
		t.Fatal(err)
	}
	var got []struct{ Config struct{ Env []string } }
	if err := json.Unmarshal([]byte(inspect), &got); err != nil || len(got) != 1 {
		t.Fatalf("inspect: %v", err)
	}
	// SC's own environment may hold what SC needs; nothing else may.
	outside := inspect
	for _, kv := range got[0].Config.Env {
		outside = strings.ReplaceAll(outside, jsonString(kv), `""`)
	}
	stop := startBinary(t, "PLUGIN_TUNNEL_NAME="+tunnel, "PLUGIN_ACTION=stop", "PLUGIN_ACCESS_KEY=", "PLUGIN_SC_ARGS=", "PLUGIN_LOGS_FILE="+filepath.Join(dir, "sc.log"))
	if code := stop.wait(t); code != 0 {
		t.Fatalf("stop exited %d:\n%s", code, stop.output())
	}
	logs, _ := os.ReadFile(filepath.Join(dir, "sc.log"))
	if !strings.Contains(string(logs), "(leaked on purpose)") {
		t.Fatalf("SC did not log its secrets, so masking was not put to the test:\n%s", logs)
	}
	for _, s := range secrets {
		for what, text := range map[string]string{"the start's output": start.output(), "the status step's output": status.output(),
			"the stop step's output": stop.output(), "logs_file": string(logs), "a command line of this machine": cmdlines, "docker inspect outside SC's environment": outside} {
			if strings.Contains(text, s) {
				t.Errorf("%s appears in %s", s, what)
			}
		}
	}
	testenv.AssertNoTunnel(t, eng, tunnel)
}

// procCmdlines is every process's command line on this machine.
func procCmdlines(t *testing.T) string {
	t.Helper()
	paths, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, p := range paths {
		if raw, err := os.ReadFile(p); err == nil {
			b.WriteString(strings.ReplaceAll(string(raw), "\x00", " ") + "\n")
		}
	}
	return b.String()
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// dockerCLI runs the docker CLI against the machine's engine.
func dockerCLI(args ...string) (string, error) { return testenv.DockerCLI(args...) }
