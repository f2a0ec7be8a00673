package plugin

import (
	"slices"
	"strings"
	"testing"
)

// TestSecretsAreWhatIsHandedOn: the masker gets the trimmed key SC gets,
// and every secret value that env, sc_args and the proxies carry.
func TestSecretsAreWhatIsHandedOn(t *testing.T) {
	s := DefaultSettings()
	s.Username, s.Region = "alice", "us-west"
	s.AccessKey = "key-from-a-file\n"
	s.Proxy, s.ProxySauce = "http://bob:proxypass1@proxy:3128", "corp:proxypass2@gateway:8080"
	s.Env = `{"SAUCE_API_BASIC_AUTH":"user:hunter2pass","SAUCE_HEADER":"Authorization: Bearer tok3n","SAUCE_DNS_SERVER":"1.1.1.1"}`
	s.SCArgs = `["--auth", "carol:authpass3@upstream:3128", "-k=ignored-but-secret", "--log-http=api:url"]`
	c, err := s.Config(Pipeline{}, "h", "r")
	if err == nil || !strings.Contains(err.Error(), "-k is set by the plugin") {
		t.Fatalf("an access key in sc_args was not refused: %v", err)
	}
	got := c.Secrets()
	for _, want := range []string{"key-from-a-file", "proxypass1", "proxypass2", "user:hunter2pass", "hunter2pass",
		"Authorization: Bearer tok3n", "carol:authpass3", "authpass3", "ignored-but-secret"} {
		if !slices.Contains(got, want) {
			t.Errorf("%q is not masked; secrets: %q", want, got)
		}
	}
	for _, never := range []string{"1.1.1.1", "api:url", "alice"} {
		if slices.Contains(got, never) {
			t.Errorf("%q is masked, but is no secret", never)
		}
	}
	m := NewMasker(c.Secrets()...)
	line := "auth user:hunter2pass key key-from-a-file via http://bob:proxypass1@proxy:3128"
	want := "auth *** key *** via http://***@proxy:3128"
	if out := m.String(line); out != want {
		t.Errorf("masked:\n got %s\nwant %s", out, want)
	}
}

func TestSecretArgsForms(t *testing.T) {
	args := []string{"run", "--api-basic-auth=u:p4ss", "-H", "X-Token: abc123", "--proxy", "http://proxy:3128", "--tunnel-connections", "4"}
	var at []int
	for _, a := range SecretArgs(args) {
		at = append(at, a.Index)
	}
	if !slices.Equal(at, []int{1, 3}) {
		t.Errorf("secret arguments at %v, want [1 3] (a proxy without a password holds none)", at)
	}
}
