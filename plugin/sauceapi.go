package plugin

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// The tunnel-limit backstop. A tunnel whose SC did not shut down gracefully
// (killed, crashed, cut short by stop_timeout) stays registered at Sauce
// Labs, and counts against the account's concurrent tunnels, until Sauce
// times it out. As Sauce's own Jenkins plugin does, the stop path then
// deletes it through Sauce's REST API, with the credentials SC itself was
// given, read from its container or Secret at that moment.

// restHosts are Sauce's REST API hosts, by SC5 region.
var restHosts = map[string]string{
	"us-west":    "https://api.us-west-1.saucelabs.com",
	"us-east":    "https://api.us-east-4.saucelabs.com",
	"eu-central": "https://api.eu-central-1.saucelabs.com",
}

// SauceAPI is Sauce Labs' REST API for one account.
type SauceAPI struct {
	Base, Username string
	AccessKey      Secret
	// Proxy is SC's proxy to Sauce Labs (SAUCE_PROXY_SAUCE), if any.
	Proxy string
	// Pool is true for a tunnel of a pool (SAUCE_TUNNEL_POOL), whose
	// tunnels share the name.
	Pool bool
}

// SauceAPIOf is the API as SC's own variables (NAME=value) reach it: its
// username, access key, region and proxy; base, when set (rest_url),
// replaces the region's host. It is false without credentials or a known
// region.
func SauceAPIOf(env []string, base string) (SauceAPI, bool) {
	vars := map[string]string{}
	for _, e := range env {
		if k, v, ok := strings.Cut(e, "="); ok {
			vars[k] = v
		}
	}
	a := SauceAPI{Username: vars["SAUCE_USERNAME"], AccessKey: Secret(vars["SAUCE_ACCESS_KEY"]), Proxy: vars["SAUCE_PROXY_SAUCE"],
		Pool: vars["SAUCE_TUNNEL_POOL"] == "true"}
	region := regionAliases[strings.ToLower(vars["SAUCE_REGION"])]
	a.Base = strings.TrimRight(cmp.Or(base, restHosts[region]), "/")
	return a, a.Username != "" && a.AccessKey != "" && a.Base != ""
}

// restTimeout bounds each call: the backstop must never hold a stop up long.
const restTimeout = 15 * time.Second

// DeleteTunnels deletes the account's running tunnels named name and
// returns their IDs. The tunnel is found by its name, not SC's own ID: by
// the time the backstop is needed SC may be gone, and its /info with it.
func (a SauceAPI) DeleteTunnels(ctx context.Context, name string) ([]string, error) {
	var tunnels []struct {
		ID     string `json:"id"`
		Name   string `json:"tunnel_identifier"`
		Status string `json:"status"`
	}
	if err := a.call(ctx, http.MethodGet, "/tunnels?full=true", &tunnels); err != nil {
		return nil, err
	}
	var deleted []string
	for _, t := range tunnels {
		if t.Name != name || t.Status == "terminated" {
			continue
		}
		if err := a.call(ctx, http.MethodDelete, "/tunnels/"+url.PathEscape(t.ID), nil); err != nil {
			return deleted, err
		}
		deleted = append(deleted, t.ID)
	}
	return deleted, nil
}

func (a SauceAPI) call(ctx context.Context, method, path string, out any) error {
	ctx, cancel := context.WithTimeout(ctx, restTimeout)
	defer cancel()
	u := a.Base + "/rest/v1/" + url.PathEscape(a.Username) + path
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return fmt.Errorf("sauce labs rest api: %w", err)
	}
	req.SetBasicAuth(a.Username, a.AccessKey.Value())
	req.Header.Set("User-Agent", "drone-sauce-connect")
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if a.Proxy != "" {
		p, err := url.Parse(a.Proxy)
		if err != nil || p.Host == "" {
			p = &url.URL{Scheme: "http", Host: a.Proxy}
		}
		transport.Proxy = http.ProxyURL(p)
	}
	resp, err := (&http.Client{Transport: transport}).Do(req)
	if err != nil {
		return fmt.Errorf("sauce labs rest api: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return &RESTError{Method: method, URL: a.Base + "/rest/v1/" + a.Username + strings.SplitN(path, "?", 2)[0], Status: resp.StatusCode}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("sauce labs rest api %s: %w", method, err)
	}
	return nil
}

// RESTError is an answer of Sauce's REST API other than a success.
type RESTError struct {
	Method, URL string
	Status      int
}

func (e *RESTError) Error() string {
	return fmt.Sprintf("sauce labs rest api %s %s: %d %s", e.Method, e.URL, e.Status, http.StatusText(e.Status))
}

// Backstop deletes the tunnel at Sauce Labs after an SC that ended without
// its graceful shutdown (why says how it ended), with SC's own variables
// env. Every failure is one warning: the stop has done its part already.
func Backstop(ctx context.Context, log logrus.FieldLogger, env []string, restURL, tunnel, why string) {
	api, ok := SauceAPIOf(env, restURL)
	switch {
	case !ok:
		log.Warnf("%s, and the tunnel may stay registered at Sauce Labs until it times out: SC's container holds no credentials and region to delete it with", why)
		return
	case api.Pool:
		log.Warnf("%s; the tunnel may stay registered at Sauce Labs until it times out: it is part of a tunnel pool, whose tunnels share the name, so none is deleted", why)
		return
	}
	deleted, err := api.DeleteTunnels(ctx, tunnel)
	if err != nil {
		hint := ""
		if re := (*RESTError)(nil); errors.As(err, &re) && (re.Status == http.StatusUnauthorized || re.Status == http.StatusForbidden) {
			hint = " (a service account's key cannot stop tunnels; the tunnel's owner's can)"
		}
		log.Warnf("%s, and deleting tunnel %s at Sauce Labs failed: %v%s; it counts against the account's concurrent tunnels until Sauce times it out", why, tunnel, err, hint)
		return
	}
	if len(deleted) == 0 {
		log.Infof("%s; Sauce Labs has no running tunnel %s left", why, tunnel)
		return
	}
	log.Warnf("%s: tunnel %s deleted at Sauce Labs (%s) so that it no longer counts against the account's tunnels", why, tunnel, strings.Join(deleted, ", "))
}
