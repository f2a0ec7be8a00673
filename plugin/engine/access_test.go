package engine_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drone-sauce-connect/drone-sauce-connect/internal/testenv"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

// TestAccessFromEnv: each DOCKER_* mistake is one line that names the
// variable and the fix; good TLS settings are read whole.
func TestAccessFromEnv(t *testing.T) {
	dir := t.TempDir()
	client, other, key, err := testenv.MakeCerts(dir, testenv.DockerdHosts)
	if err != nil {
		t.Fatal(err)
	}
	noKey := filepath.Join(dir, "nokey")
	if err := os.MkdirAll(noKey, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ca.pem", "cert.pem"} {
		b, _ := os.ReadFile(filepath.Join(client, f))
		_ = os.WriteFile(filepath.Join(noKey, f), b, 0o600)
	}
	mixed := filepath.Join(dir, "mixed")
	_ = os.MkdirAll(mixed, 0o700)
	for _, f := range []string{"ca.pem", "cert.pem"} {
		b, _ := os.ReadFile(filepath.Join(client, f))
		_ = os.WriteFile(filepath.Join(mixed, f), b, 0o600)
	}
	_, _, _, _ = testenv.MakeCerts(filepath.Join(dir, "b"), nil)
	b, _ := os.ReadFile(filepath.Join(dir, "b", "client", "key.pem"))
	_ = os.WriteFile(filepath.Join(mixed, "key.pem"), b, 0o600)

	for _, tc := range []struct {
		name string
		env  map[string]string
		want string // "" means accepted
	}{
		{"default socket", nil, ""},
		{"rootless socket", map[string]string{"DOCKER_HOST": "unix:///run/user/1000/docker.sock"}, ""},
		{"plain tcp", map[string]string{"DOCKER_HOST": "tcp://docker:2375"}, ""},
		{"tls with verify", map[string]string{"DOCKER_HOST": "tcp://docker:2376", "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": client}, ""},
		{"tls, other CA (found at the handshake)", map[string]string{"DOCKER_HOST": "tcp://docker:2376", "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": other}, ""},
		{"tcp with no host", map[string]string{"DOCKER_HOST": "tcp://"}, "DOCKER_HOST=tcp:// names no host; set it to tcp://HOST:PORT"},
		{"tcp with no port", map[string]string{"DOCKER_HOST": "tcp://docker"}, "DOCKER_HOST=tcp://docker names no port; set it to tcp://docker:2376"},
		{"no scheme", map[string]string{"DOCKER_HOST": "docker:2376"}, "DOCKER_HOST=docker:2376 is no address"},
		{"ssh", map[string]string{"DOCKER_HOST": "ssh://me@build-host"}, "ssh:// is not supported"},
		{"unix without a path", map[string]string{"DOCKER_HOST": "unix://"}, "names no socket path"},
		{"verify without a cert dir", map[string]string{"DOCKER_HOST": "tcp://docker:2376", "DOCKER_TLS_VERIFY": "1"}, "DOCKER_TLS_VERIFY is set but DOCKER_CERT_PATH is not"},
		{"cert dir without key.pem", map[string]string{"DOCKER_HOST": "tcp://docker:2376", "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": noKey}, "DOCKER_CERT_PATH=" + noKey + " has no readable key.pem"},
		{"a key of another certificate", map[string]string{"DOCKER_HOST": "tcp://docker:2376", "DOCKER_CERT_PATH": mixed}, "cert.pem and key.pem are no key pair"},
		{"certs for a socket", map[string]string{"DOCKER_CERT_PATH": client}, "DOCKER_CERT_PATH is set but DOCKER_HOST=unix:///var/run/docker.sock is no tcp:// address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := engine.AccessFromEnv(func(k string) string { return tc.env[k] })
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if tc.env["DOCKER_CERT_PATH"] != "" && (a.TLS == nil || string(a.TLS.Key) != key || a.TLS.Verify != (tc.env["DOCKER_TLS_VERIFY"] != "")) {
					t.Errorf("the TLS files were not read: %+v", a.TLS)
				}
				return
			}
			if !errors.Is(err, engine.ErrAccess) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("got %v, want one line with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Fatal("the error shows the private key")
			}
		})
	}
}
