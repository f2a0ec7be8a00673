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
	"sort"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// Sauce Labs' REST API, as the plugin uses it: the tunnel as Sauce sees it.
// A tunnel name is account-wide, so what runs on this engine says nothing of
// the account: the start confirms at Sauce that its tunnel is listed
// (Confirm), warns when the name is taken (WarnNameInUse), lists the
// account's tunnels when the limit is reached (AccountTunnels), and the
// backstop deletes by the ID recorded at ready time, never by name.

// restHosts are Sauce's REST API hosts, by SC5 region.
var restHosts = map[string]string{
	"us-west":    "https://api.us-west-1.saucelabs.com",
	"us-east":    "https://api.us-east-4.saucelabs.com",
	"eu-central": "https://api.eu-central-1.saucelabs.com",
}

// restClient is Sauce Labs' REST API for one account.
type restClient struct {
	Base, Username string
	AccessKey      Secret
	// Proxy is SC's proxy to Sauce Labs (proxy_sauce, SAUCE_PROXY_SAUCE),
	// "" for none: the runner's was already taken into it.
	Proxy string
	// hc carries every call, so that the calls of one client share their
	// connections (a confirmation polls); proxyErr is why Proxy is no
	// proxy address. Both are made once, by sauceAPI.
	hc       *http.Client
	proxyErr error
}

// restTunnel is a tunnel as Sauce's REST API lists it (?full=true).
type restTunnel struct {
	ID           string         `json:"id"`
	Owner        string         `json:"owner"`
	Name         string         `json:"tunnel_identifier"`
	Status       string         `json:"status"`
	Host         string         `json:"host"`
	CreationTime int64          `json:"creation_time"`
	Metadata     map[string]any `json:"metadata"`
}

// describe is one line about t, for people: name, ID, owner, age, metadata.
func (t restTunnel) describe(now time.Time) string {
	parts := []string{"id " + t.ID, "owner " + cmp.Or(t.Owner, "?")}
	if t.CreationTime > 0 {
		parts = append(parts, "up "+now.Sub(time.Unix(t.CreationTime, 0)).Round(time.Second).String())
	}
	if t.Host != "" {
		parts = append(parts, "host "+t.Host)
	}
	keys := make([]string, 0, len(t.Metadata))
	for k := range t.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%v", k, t.Metadata[k]))
	}
	return t.Name + " (" + strings.Join(parts, ", ") + ")"
}

// restClientOf is the API as SC's own variables (NAME=value) reach it: its
// username, access key, region and proxy; base, when set (rest_url),
// replaces the region's host. It is false without credentials or a known
// region.
func restClientOf(env []string, base string) (restClient, bool) {
	vars := map[string]string{}
	for _, e := range env {
		if k, v, ok := strings.Cut(e, "="); ok {
			vars[k] = v
		}
	}
	return sauceAPI(vars["SAUCE_USERNAME"], vars["SAUCE_ACCESS_KEY"], vars["SAUCE_REGION"], base, vars["SAUCE_PROXY_SAUCE"])
}

// restClientFor is the API as the configuration reaches it.
func restClientFor(c Config) (restClient, bool) {
	return sauceAPI(c.Username, c.AccessKey.Value(), c.Region, c.RESTURL, cmp.Or(c.ProxySauce, c.FileOptions["proxy-sauce"]))
}

func sauceAPI(user, key, region, base, proxy string) (restClient, bool) {
	a := restClient{Username: user, AccessKey: Secret(key), Proxy: proxy}
	a.Base = strings.TrimRight(cmp.Or(base, restHosts[regionAliases[strings.ToLower(region)]]), "/")
	transport := &http.Transport{Proxy: nil, ForceAttemptHTTP2: true, TLSHandshakeTimeout: 10 * time.Second, IdleConnTimeout: 30 * time.Second}
	if proxy != "" {
		p, err := parseProxy(proxy)
		transport.Proxy, a.proxyErr = http.ProxyURL(p), err
	}
	a.hc = &http.Client{Transport: transport}
	return a, a.Username != "" && a.AccessKey != "" && a.Base != ""
}

// restTimeout bounds each call: the REST API must never hold a step up long.
const restTimeout = 15 * time.Second

// Tunnels lists the account's running tunnels.
func (a restClient) Tunnels(ctx context.Context) ([]restTunnel, error) {
	var all []restTunnel
	if err := a.call(ctx, http.MethodGet, "/tunnels?full=true", &all); err != nil {
		return nil, err
	}
	running := all[:0]
	for _, t := range all {
		if t.Status == "" || t.Status == "running" {
			running = append(running, t)
		}
	}
	return running, nil
}

// Tunnel reads one tunnel by its ID.
func (a restClient) Tunnel(ctx context.Context, id string) (restTunnel, error) {
	var t restTunnel
	return t, a.call(ctx, http.MethodGet, "/tunnels/"+url.PathEscape(id), &t)
}

// Delete ends one tunnel by its ID.
func (a restClient) Delete(ctx context.Context, id string) error {
	return a.call(ctx, http.MethodDelete, "/tunnels/"+url.PathEscape(id), nil)
}

func (a restClient) call(ctx context.Context, method, path string, out any) error {
	ctx, cancel := context.WithTimeout(ctx, restTimeout)
	defer cancel()
	if a.proxyErr != nil {
		return fmt.Errorf("sauce labs rest api: proxy_sauce is not a proxy address: %w", a.proxyErr)
	}
	account := a.Base + "/rest/v1/" + url.PathEscape(a.Username)
	endpoint, _, _ := strings.Cut(account+path, "?")
	req, err := http.NewRequestWithContext(ctx, method, account+path, nil)
	if err != nil {
		return fmt.Errorf("sauce labs rest api: %w", err)
	}
	req.SetBasicAuth(a.Username, a.AccessKey.Value())
	req.Header.Set("User-Agent", "drone-sauce-connect")
	resp, err := a.hc.Do(req)
	if err != nil {
		// Not the *url.Error: it would repeat the URL; the cause is enough.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return &restUnreachableError{Method: method, URL: endpoint, Err: err}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return &restError{Method: method, URL: endpoint, Status: resp.StatusCode}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("sauce labs rest api %s %s: %w", method, endpoint, err)
	}
	return nil
}

// parseProxy reads a proxy address given as a URL or as host:port, with or
// without user:pass@ (SC5 takes both): without a scheme it is http.
func parseProxy(v string) (*url.URL, error) {
	if !strings.Contains(v, "://") {
		v = "http://" + v
	}
	u, err := url.Parse(v)
	if err != nil {
		// url.Parse's error quotes the whole value, password and all.
		return nil, errors.New("not a URL or host:port")
	}
	if u.Host == "" {
		return nil, errors.New("no host")
	}
	return u, nil
}

// restError is an answer of Sauce's REST API other than a success.
type restError struct {
	Method, URL string
	Status      int
}

func (e *restError) Error() string {
	return fmt.Sprintf("sauce labs rest api %s %s: %d %s", e.Method, e.URL, e.Status, http.StatusText(e.Status))
}

// refused reports whether the API refused the credentials (401, or 403 for
// a service account, which may not manage tunnels).
func (e *restError) refused() bool {
	return e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden
}

// restUnreachableError means no answer came from Sauce's REST API.
type restUnreachableError struct {
	Method, URL string
	Err         error
}

func (e *restUnreachableError) Error() string {
	return fmt.Sprintf("sauce labs rest api %s %s: no answer: %v", e.Method, e.URL, e.Err)
}

func (e *restUnreachableError) Unwrap() error { return e.Err }

// serviceAccountHint is why a refusal may not be the key's fault.
const serviceAccountHint = " (a service account's key cannot manage tunnels; the tunnel's owner's can)"

// Backstop deletes the tunnel at Sauce Labs after an SC that ended without
// its graceful shutdown (why says how it ended), with SC's own variables
// env. It deletes only the tunnel this SC opened, by the ID recorded at
// ready time (id): by name it could end another pipeline's live tunnel of
// the same name. With no ID it deletes nothing and says so. Every failure
// is one warning: the stop has done its part already.
func Backstop(ctx context.Context, log logrus.FieldLogger, env []string, restURL, tunnel, id, why string) {
	api, ok := restClientOf(env, restURL)
	switch {
	case id == "":
		log.Warnf("%s; the tunnel may stay registered at Sauce Labs until it times out: its Sauce Labs ID was never recorded (Sauce had not confirmed it), and deleting by name could end another pipeline's tunnel %s", why, tunnel)
		return
	case !ok:
		log.Warnf("%s, and the tunnel may stay registered at Sauce Labs until it times out: SC's container holds no credentials and region to delete it with", why)
		return
	}
	t, err := api.Tunnel(ctx, id)
	if re := (*restError)(nil); errors.As(err, &re) && re.Status == http.StatusNotFound {
		log.Infof("%s; Sauce Labs has no tunnel %s (%s) left", why, tunnel, id)
		return
	}
	if err == nil && t.Status != "" && t.Status != "running" {
		log.Warnf("%s; Sauce Labs had already closed tunnel %s (%s, status %s)", why, tunnel, id, t.Status)
		return
	}
	if err == nil {
		err = api.Delete(ctx, id)
	}
	if err != nil {
		hint := ""
		if re := (*restError)(nil); errors.As(err, &re) && re.refused() {
			hint = serviceAccountHint
		}
		log.Warnf("%s, and deleting tunnel %s (%s) at Sauce Labs failed: %v%s; it counts against the account's concurrent tunnels until Sauce times it out", why, tunnel, id, err, hint)
		return
	}
	log.Warnf("%s: tunnel %s (%s) deleted at Sauce Labs so that it no longer counts against the account's tunnels", why, tunnel, id)
}
