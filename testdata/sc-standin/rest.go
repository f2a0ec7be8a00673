package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// The stand-in for Sauce Labs' REST API, `sc standin-rest <address>`: the
// tunnels endpoints the research documents (GET
// /rest/v1/{username}/tunnels[?full=true], DELETE
// /rest/v1/{username}/tunnels/{id}), behind Basic auth with the username of
// the path. A stand-in SC given SAUCE_STANDIN_REST_URL registers its tunnel
// there once ready (POST /rest/v1/{username}/tunnels, this double's own way:
// how SC really registers is not documented) and deletes it on its graceful
// shutdown, as SC does; a crash or a SIGKILL leaves it registered, as at
// Sauce Labs. GET /standin/deletes lists every DELETE with its caller's
// User-Agent, for tests to tell who closed a tunnel.

// restTunnel is one registered tunnel.
type restTunnel struct {
	ID     string `json:"id"`
	Owner  string `json:"owner"`
	Name   string `json:"tunnel_identifier"`
	Status string `json:"status"`
}

// restDelete is one DELETE the double answered.
type restDelete struct {
	ID, Tunnel, Agent string
}

type restDouble struct {
	mu      sync.Mutex
	tunnels map[string]*restTunnel
	deletes []restDelete
	next    int
}

func serveREST(addr string) error {
	d := &restDouble{tunnels: map[string]*restTunnel{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /rest/v1/{user}/tunnels", d.auth(d.list))
	mux.HandleFunc("POST /rest/v1/{user}/tunnels", d.auth(d.register))
	mux.HandleFunc("DELETE /rest/v1/{user}/tunnels/{id}", d.auth(d.delete))
	mux.HandleFunc("GET /standin/deletes", func(w http.ResponseWriter, _ *http.Request) {
		d.mu.Lock()
		defer d.mu.Unlock()
		_ = json.NewEncoder(w).Encode(d.deletes)
	})
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	return srv.ListenAndServe()
}

func (d *restDouble) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if u, k, ok := r.BasicAuth(); !ok || u != r.PathValue("user") || k == "" {
			http.Error(w, `{"message":"Not authorized"}`, http.StatusUnauthorized)
			return
		}
		h(w, r)
	}
}

func (d *restDouble) list(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	defer d.mu.Unlock()
	full, ids := []restTunnel{}, []string{}
	for _, t := range d.tunnels {
		if t.Owner == r.PathValue("user") && t.Status == "running" {
			full, ids = append(full, *t), append(ids, t.ID)
		}
	}
	if r.URL.Query().Get("full") == "true" {
		_ = json.NewEncoder(w).Encode(full)
		return
	}
	_ = json.NewEncoder(w).Encode(ids)
}

func (d *restDouble) register(w http.ResponseWriter, r *http.Request) {
	var t restTunnel
	if err := json.NewDecoder(r.Body).Decode(&t); err != nil || t.Name == "" {
		http.Error(w, `{"message":"tunnel_identifier required"}`, http.StatusBadRequest)
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.next++
	t.ID, t.Owner, t.Status = fmt.Sprintf("standin-tunnel-%d", d.next), r.PathValue("user"), "running"
	d.tunnels[t.ID] = &t
	_ = json.NewEncoder(w).Encode(t)
}

func (d *restDouble) delete(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, ok := d.tunnels[r.PathValue("id")]
	if !ok || t.Owner != r.PathValue("user") {
		http.Error(w, `{"message":"Not found"}`, http.StatusNotFound)
		return
	}
	t.Status = "terminated"
	d.deletes = append(d.deletes, restDelete{ID: t.ID, Tunnel: t.Name, Agent: r.UserAgent()})
	_ = json.NewEncoder(w).Encode(map[string]any{"result": true, "id": t.ID, "jobs_running": 0})
}

// restClient is a stand-in SC's side of the double.
type restClient struct {
	base, user, key string
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
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}
