package plugin

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzSettings feeds arbitrary values to the settings that parse: lists,
// JSON objects, durations, region names, ports, arguments. Config must never
// panic, and whatever it accepts must hold the invariants the rest of the
// plugin relies on.
func FuzzSettings(f *testing.F) {
	f.Add("eu", "3m", "30s", `{"SAUCE_DNS_SERVER":"1.1.1.1"}`, `{"team":"web"}`, "a.com,b.com", `["--log-http=api:url"]`, "8032", "o/r")
	f.Add("US-EAST-4", "90", "1h", "{\n  \"SAUCE_X\": 1\n}", "", ",,", "--a=1,--b=2 c", "0", "a/b; rm -rf /")
	f.Add("", "", "-1s", "[1]", "null", "", "[", "70000", strings.Repeat("x", 300))
	f.Fuzz(func(t *testing.T, region, ready, stop, env, labels, domains, args, port, repo string) {
		s := DefaultSettings()
		s.Username, s.AccessKey = "u", "k"
		s.Region, s.ReadyTimeout, s.StopTimeout, s.Env, s.Labels = region, ready, stop, env, labels
		s.TunnelDomains, s.SCArgs, s.APIHostPort = domains, args, port
		c, err := s.Config(Pipeline{Drone: "true", DroneRepo: repo, DroneBuildNumber: "1"}, "h", "r")
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "invalid setting ") {
					t.Fatalf("a problem that names no setting: %q", line)
				}
			}
			return
		}
		if _, ok := regionAliases[c.Region]; !ok || c.Region != regionAliases[c.Region] {
			t.Fatalf("region %q accepted as %q", region, c.Region)
		}
		if c.ReadyTimeout <= 0 || c.StopTimeout <= 0 {
			t.Fatalf("non-positive timeouts accepted: %v %v", c.ReadyTimeout, c.StopTimeout)
		}
		for k := range c.Env {
			if !strings.HasPrefix(k, "SAUCE_") || k == "SAUCE_ACCESS_KEY" {
				t.Fatalf("env key %q accepted", k)
			}
		}
		for k := range c.Labels {
			if strings.HasPrefix(k, labelPrefix) {
				t.Fatalf("reserved label %q accepted", k)
			}
		}
		for _, d := range c.TunnelDomains {
			if d == "" || strings.Contains(d, ",") {
				t.Fatalf("list item %q", d)
			}
		}
		if c.TunnelName != sanitizeName(c.TunnelName, maxTunnelName) || c.TunnelName == "" {
			t.Fatalf("tunnel name %q is not sanitised", c.TunnelName)
		}
		if c.ContainerName != sanitizeName(c.ContainerName, 128) {
			t.Fatalf("container name %q is not sanitised", c.ContainerName)
		}
		for _, a := range c.SCArgs {
			if strings.Contains(a, "\x00") {
				t.Fatalf("NUL in argv")
			}
		}
		for _, e := range SCEnv(c, ":8032") {
			if strings.Contains(e.Name+e.Value, "\x00") {
				t.Fatalf("NUL in SC's environment")
			}
		}
	})
}

// FuzzMaskWriter writes data containing a secret, split at arbitrary points,
// through the masking writer: the secret must never come out, and the
// output must equal the input with every occurrence masked.
func FuzzMaskWriter(f *testing.F) {
	f.Add("s3cr3t-KEY", "key is s3cr3t-KEY and\nagain s3cr3t-KEY", uint16(3), uint16(11))
	f.Add("abcabc", "abcabcabcabc", uint16(1), uint16(1))
	f.Add("k", strings.Repeat("x", 70000)+"k", uint16(5000), uint16(9))
	f.Add("two\nlines", "a two\nlines b\ntwo\n", uint16(4), uint16(1))
	f.Fuzz(func(t *testing.T, secret, data string, a, b uint16) {
		if secret == "" || strings.Contains(maskText, secret) {
			t.Skip() // a secret the mask itself cannot contain
		}
		var out bytes.Buffer
		m := NewMasker(secret)
		w := m.Writer(&out)
		chunks := []int{int(a)%17 + 1, int(b)%29 + 1}
		for i, n := 0, 0; i < len(data); n++ {
			end := min(len(data), i+chunks[n%2])
			if _, err := w.Write([]byte(data[i:end])); err != nil {
				t.Fatal(err)
			}
			i = end
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out.String(), secret) && !strings.Contains(m.String(data), secret) {
			t.Fatalf("the secret came out")
		}
		if out.String() != m.String(data) {
			t.Fatalf("split writes gave %q, whole %q", out.String(), m.String(data))
		}
	})
}
