package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// The stand-in for Sauce Labs' REST API, `sc standin-rest <address>
// [flags]`: the account as Sauce's documentation describes it, never as the
// plugin expects it.
//
//   - GET /rest/v1/{username}/tunnels lists the running tunnels' IDs,
//     ?full=true the objects (id, owner, status, tunnel_identifier,
//     shared_tunnel, host, creation_time, metadata); GET …/tunnels/{id} one
//     tunnel; DELETE …/tunnels/{id} ends it (the research, section 8).
//   - Basic auth with the username of the path; with --access-key only that
//     key is accepted, else any non-empty one: 401 otherwise.
//   - "Without --tunnel-pool, launching multiple tunnels with the same
//     --tunnel-name will cause older instances to shut down" (sauce-docs,
//     tunnel-pool guide): a new tunnel ends the running ones of its name
//     unless both are in a pool; their SCs, which follow their tunnel here,
//     exit as SC does on a remote shutdown.
//   - --limit N: the account's limit of running tunnels; one more is
//     refused with "Too many active tunnels" (the text SC4 showed; SC5
//     documents only "create tunnel: <msg>").
//   - --list-delay D: a tunnel appears in the listings D after its SC
//     registered it (Sauce's false "ready": SC's /readyz says 200 before
//     Sauce lists the tunnel, node-saucelabs#242); --never-list: never.
//
// How SC itself registers is not documented: a stand-in SC given
// SAUCE_STANDIN_REST_URL POSTs /rest/v1/{username}/tunnels once ready (this
// double's own way), polls its tunnel, and DELETEs it on its graceful
// shutdown, as SC does; a crash or a SIGKILL leaves it running, as at Sauce
// Labs. GET /standin/deletes lists every DELETE with its caller's
// User-Agent, for tests to tell who closed a tunnel.

// restTunnel is one tunnel as the REST API shows it.
type restTunnel struct {
	ID           string            `json:"id"`
	Owner        string            `json:"owner"`
	Name         string            `json:"tunnel_identifier"`
	Status       string            `json:"status"`
	Shared       bool              `json:"shared_tunnel"`
	Host         string            `json:"host"`
	CreationTime int64             `json:"creation_time"`
	Metadata     map[string]string `json:"metadata,omitempty"`
}

// registration is what a stand-in SC sends when its tunnel is up.
type registration struct {
	Name     string            `json:"tunnel_identifier"`
	Pool     bool              `json:"tunnel_pool"`
	Shared   bool              `json:"shared_tunnel"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// restDelete is one DELETE the double answered.
type restDelete struct {
	ID, Tunnel, Agent string
}

// entry is a tunnel and what only the double knows of it.
type entry struct {
	restTunnel
	pool   bool
	listed time.Time
}

type restDouble struct {
	mu        sync.Mutex
	tunnels   map[string]*entry
	deletes   []restDelete
	next      int
	key       string
	limit     int
	listDelay time.Duration
	neverList bool
}

func serveREST(args []string) error {
	fs := flag.NewFlagSet("standin-rest", flag.ContinueOnError)
	d := &restDouble{tunnels: map[string]*entry{}}
	fs.StringVar(&d.key, "access-key", "", "the one access key accepted (default: any)")
	fs.IntVar(&d.limit, "limit", 0, "the account's limit of running tunnels (0: none)")
	fs.DurationVar(&d.listDelay, "list-delay", 0, "how long after its registration a tunnel is listed")
	fs.BoolVar(&d.neverList, "never-list", false, "never list a tunnel")
	if len(args) < 1 {
		return fmt.Errorf("Error: standin-rest needs an address to listen on")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /rest/v1/{user}/tunnels", d.auth(d.list))
	mux.HandleFunc("GET /rest/v1/{user}/tunnels/{id}", d.auth(d.get))
	mux.HandleFunc("POST /rest/v1/{user}/tunnels", d.auth(d.register))
	mux.HandleFunc("DELETE /rest/v1/{user}/tunnels/{id}", d.auth(d.delete))
	mux.HandleFunc("GET /standin/deletes", func(w http.ResponseWriter, _ *http.Request) {
		d.mu.Lock()
		defer d.mu.Unlock()
		_ = json.NewEncoder(w).Encode(d.deletes)
	})
	mux.HandleFunc("GET /standin/tunnels", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(d.all())
	})
	srv := &http.Server{Addr: args[0], Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	return srv.ListenAndServe()
}

func (d *restDouble) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u, k, ok := r.BasicAuth()
		if !ok || u != r.PathValue("user") || k == "" || d.key != "" && k != d.key {
			http.Error(w, `{"message":"Not authorized"}`, http.StatusUnauthorized)
			return
		}
		h(w, r)
	}
}

// all is every tunnel the double ever had, oldest first (for tests).
func (d *restDouble) all() []restTunnel {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := []restTunnel{}
	for _, e := range d.tunnels {
		out = append(out, e.restTunnel)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (d *restDouble) list(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	defer d.mu.Unlock()
	full, ids := []restTunnel{}, []string{}
	now := time.Now()
	for _, e := range d.tunnels {
		if e.Owner == r.PathValue("user") && e.Status == "running" && !d.neverList && !now.Before(e.listed) {
			full, ids = append(full, e.restTunnel), append(ids, e.ID)
		}
	}
	sort.Slice(full, func(i, j int) bool { return full[i].ID < full[j].ID })
	sort.Strings(ids)
	if r.URL.Query().Get("full") == "true" {
		_ = json.NewEncoder(w).Encode(full)
		return
	}
	_ = json.NewEncoder(w).Encode(ids)
}

// owned is the tunnel the request names when it is the user's; else it
// answers 404, as Sauce does. The caller holds d.mu.
func (d *restDouble) owned(w http.ResponseWriter, r *http.Request) (*entry, bool) {
	e, ok := d.tunnels[r.PathValue("id")]
	if !ok || e.Owner != r.PathValue("user") {
		http.Error(w, `{"message":"Not found"}`, http.StatusNotFound)
		return nil, false
	}
	return e, true
}

func (d *restDouble) get(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e, ok := d.owned(w, r); ok {
		_ = json.NewEncoder(w).Encode(e.restTunnel)
	}
}

func (d *restDouble) register(w http.ResponseWriter, r *http.Request) {
	var reg registration
	if err := json.NewDecoder(r.Body).Decode(&reg); err != nil || reg.Name == "" {
		http.Error(w, `{"message":"tunnel_identifier required"}`, http.StatusBadRequest)
		return
	}
	user := r.PathValue("user")
	d.mu.Lock()
	defer d.mu.Unlock()
	// The older tunnels of the name shut down when this one starts, so a
	// replacement never counts against the limit twice.
	var running int
	var older []*entry
	for _, e := range d.tunnels {
		if e.Owner != user || e.Status != "running" {
			continue
		}
		running++
		if e.Name == reg.Name && !(e.pool && reg.Pool) {
			older = append(older, e)
		}
	}
	if d.limit > 0 && running-len(older) >= d.limit {
		msg, _ := json.Marshal(map[string]string{"error": fmt.Sprintf("Too many active tunnels: %d; allowed: %d", running, d.limit)})
		http.Error(w, string(msg), http.StatusForbidden)
		return
	}
	for _, e := range older {
		e.Status = "terminated"
	}
	d.next++
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	now := time.Now()
	e := &entry{restTunnel: restTunnel{ID: fmt.Sprintf("standin-tunnel-%04d", d.next), Owner: user, Name: reg.Name, Status: "running",
		Shared: reg.Shared, Host: host, CreationTime: now.Unix(), Metadata: reg.Metadata}, pool: reg.Pool, listed: now.Add(d.listDelay)}
	d.tunnels[e.ID] = e
	_ = json.NewEncoder(w).Encode(e.restTunnel)
}

func (d *restDouble) delete(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.owned(w, r)
	if !ok {
		return
	}
	e.Status = "terminated"
	d.deletes = append(d.deletes, restDelete{ID: e.ID, Tunnel: e.Name, Agent: r.UserAgent()})
	_ = json.NewEncoder(w).Encode(map[string]any{"result": true, "id": e.ID, "jobs_running": 0})
}

// restClient is a stand-in SC's side of the double.
type restClient struct {
	base, user, key string
}

// restStatusError is an answer other than a success.
type restStatusError struct {
	method, path, status, body string
}

func (e *restStatusError) Error() string {
	var b struct{ Error, Message string }
	if json.Unmarshal([]byte(e.body), &b) == nil && b.Error+b.Message != "" {
		return e.status + ": " + strings.TrimSpace(b.Error+" "+b.Message)
	}
	return e.status
}

// call sends one request as SC does, and decodes the answer into out.
func (c restClient) call(ctx context.Context, method, path string, body, out any) error {
	var b bytes.Buffer
	if body != nil {
		_ = json.NewEncoder(&b).Encode(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.base, "/")+"/rest/v1/"+c.user+path, &b)
	if err != nil {
		return err
	}
	req.SetBasicAuth(c.user, c.key)
	req.Header.Set("User-Agent", "SauceConnect/"+version)
	// A fresh connection each time, with a bound: SC's networks may have
	// changed since the last call (a watchdog moves it to the default bridge).
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var raw bytes.Buffer
		_, _ = raw.ReadFrom(resp.Body)
		return &restStatusError{method: method, path: path, status: resp.Status, body: raw.String()}
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}

// metadataOf parses SC's --metadata (key=value,…).
func metadataOf(v string) map[string]string {
	if v == "" {
		return nil
	}
	out := map[string]string{}
	for _, kv := range strings.Split(v, ",") {
		if k, val, ok := strings.Cut(kv, "="); ok {
			out[k] = val
		}
	}
	return out
}
