package plugin

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
)

func TestSauceAPIOf(t *testing.T) {
	env := []string{"SAUCE_USERNAME=alice", "SAUCE_ACCESS_KEY=k", "SAUCE_REGION=eu-central"}
	if a, ok := SauceAPIOf(env, ""); !ok || a.Base != "https://api.eu-central-1.saucelabs.com" || a.Username != "alice" {
		t.Errorf("eu-central: %+v %v", a, ok)
	}
	if a, _ := SauceAPIOf(append(env, "SAUCE_REGION=us-east-4"), "http://double:1/"); a.Base != "http://double:1" {
		t.Errorf("rest_url replaces the region's host, without its trailing slash: %q", a.Base)
	}
	if a, _ := SauceAPIOf(append(env[:2:2], "SAUCE_REGION=us-east-4"), ""); a.Base != "https://api.us-east-4.saucelabs.com" {
		t.Errorf("us-east-4: %q", a.Base)
	}
	if _, ok := SauceAPIOf([]string{"SAUCE_USERNAME=alice", "SAUCE_REGION=us-west"}, ""); ok {
		t.Error("no access key, yet an API")
	}
}

// TestBackstopDeletesByNameAndSkipsPools: the running tunnels of that name
// are deleted, with SC's credentials, and nothing else; a pool's tunnels
// share the name, so none is deleted; the key is in no line.
func TestBackstopDeletesByNameAndSkipsPools(t *testing.T) {
	var deleted []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, k, _ := r.BasicAuth(); u != "alice" || k != "SECRET-KEY-1" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/rest/v1/alice/tunnels" && r.URL.Query().Get("full") == "true":
			_, _ = w.Write([]byte(`[{"id":"a1","tunnel_identifier":"ci-7","status":"running"},{"id":"b2","tunnel_identifier":"ci-7-b","status":"running"},{"id":"c3","tunnel_identifier":"ci-7","status":"terminated"}]`))
		case r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, "/rest/v1/alice/tunnels/"):
			deleted = append(deleted, strings.TrimPrefix(r.URL.Path, "/rest/v1/alice/tunnels/"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	var out bytes.Buffer
	log := logrus.New()
	log.SetOutput(&out)
	env := []string{"SAUCE_USERNAME=alice", "SAUCE_ACCESS_KEY=SECRET-KEY-1", "SAUCE_REGION=us-west"}
	Backstop(context.Background(), log, env, srv.URL, "ci-7", "sauce connect was killed")
	if strings.Join(deleted, ",") != "a1" || !strings.Contains(out.String(), "tunnel ci-7 deleted at Sauce Labs (a1)") {
		t.Errorf("deleted %v:\n%s", deleted, out.String())
	}
	deleted = nil
	Backstop(context.Background(), log, append(env, "SAUCE_TUNNEL_POOL=true"), srv.URL, "ci-7", "sauce connect was killed")
	if len(deleted) != 0 || !strings.Contains(out.String(), "part of a tunnel pool") {
		t.Errorf("a pool's tunnel was deleted (%v):\n%s", deleted, out.String())
	}
	Backstop(context.Background(), log, []string{"SAUCE_USERNAME=alice", "SAUCE_ACCESS_KEY=WRONG", "SAUCE_REGION=us-west"}, srv.URL, "ci-7", "sauce connect was killed")
	if !strings.Contains(out.String(), "401 Unauthorized (a service account's key cannot stop tunnels") {
		t.Errorf("a refused key is not explained:\n%s", out.String())
	}
	if strings.Contains(out.String(), "SECRET-KEY-1") {
		t.Errorf("the access key was printed:\n%s", out.String())
	}
}
