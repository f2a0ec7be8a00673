package testenv

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// SauceAPI is the stand-in for Sauce Labs' REST API (`sc standin-rest`,
// testdata/sc-standin/rest.go) on the Docker engine's default bridge
// address, which the host, the plugin's containers and SC's containers on
// any network all reach. A stand-in SC given SAUCE_STANDIN_REST_URL=URL
// registers its tunnel there and closes it on its graceful shutdown.
type SauceAPI struct {
	URL  string
	dir  string
	proc *proc
}

// Delete is one DELETE of a tunnel the double answered; Agent is the
// caller's User-Agent (SauceConnect/… for SC itself).
type Delete struct {
	ID, Tunnel, Agent string
}

// StartSauceAPI builds and starts the double on the machine's engine's
// default bridge (see HostAddress), which containers on every engine of
// this machine reach. flags are the double's own (rest.go): --limit N,
// --list-delay D, --never-list, --access-key K.
func StartSauceAPI(flags ...string) (*SauceAPI, error) {
	host, err := HostAddress(docker)
	if err != nil {
		return nil, err
	}
	return StartSauceAPIOn(host, flags...)
}

// StartSauceAPIOn starts the double on host, an address of this machine
// (NodeIP for the pods of the kubelet node, which have no other route).
func StartSauceAPIOn(host string, flags ...string) (*SauceAPI, error) {
	if net.ParseIP(host) == nil {
		return nil, fmt.Errorf("the Sauce API stand-in needs an IP address of this machine to listen on, got %q", host)
	}
	dir, err := os.MkdirTemp("", "dsc-sauceapi-")
	if err != nil {
		return nil, err
	}
	a := &SauceAPI{dir: dir}
	bin, err := GoBuild("testdata/sc-standin", dir, "sc")
	if err != nil {
		a.Stop()
		return nil, err
	}
	ports, err := freePorts(1)
	if err != nil {
		a.Stop()
		return nil, err
	}
	addr := net.JoinHostPort(host, strconv.Itoa(ports[0]))
	if a.proc, err = startLogged(dir, bin, append([]string{"standin-rest", addr}, flags...)...); err != nil {
		a.Stop()
		return nil, err
	}
	a.URL = "http://" + addr
	for began := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		if _, err := a.Deletes(); err == nil {
			return a, nil
		} else if time.Since(began) > 10*time.Second {
			b, _ := os.ReadFile(filepath.Join(dir, "sc.log"))
			a.Stop()
			return nil, fmt.Errorf("the Sauce API stand-in did not answer on %s: %w\n%s", addr, err, b)
		}
	}
}

// Tunnel is a tunnel as the double keeps it.
type Tunnel struct {
	ID       string            `json:"id"`
	Name     string            `json:"tunnel_identifier"`
	Status   string            `json:"status"`
	Metadata map[string]string `json:"metadata"`
}

// Tunnels lists every tunnel the double ever had, running or not.
func (a *SauceAPI) Tunnels() ([]Tunnel, error) {
	var out []Tunnel
	return out, a.get("/standin/tunnels", &out)
}

// Running lists the IDs of the running tunnels named name.
func (a *SauceAPI) Running(name string) ([]string, error) {
	all, err := a.Tunnels()
	var ids []string
	for _, t := range all {
		if t.Name == name && t.Status == "running" {
			ids = append(ids, t.ID)
		}
	}
	return ids, err
}

func (a *SauceAPI) get(path string, out any) error {
	resp, err := http.Get(a.URL + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(out)
}

// Deletes lists the DELETEs answered so far.
func (a *SauceAPI) Deletes() ([]Delete, error) {
	var out []Delete
	return out, a.get("/standin/deletes", &out)
}

// DeletesOf lists the DELETEs of one tunnel, by whom: "sc" for SC itself,
// "plugin" for anyone else.
func (a *SauceAPI) DeletesOf(tunnel string) ([]string, error) {
	all, err := a.Deletes()
	var by []string
	for _, d := range all {
		if d.Tunnel != tunnel {
			continue
		}
		if strings.HasPrefix(d.Agent, "SauceConnect/") {
			by = append(by, "sc")
		} else {
			by = append(by, "plugin")
		}
	}
	return by, err
}

// Stop ends the double.
func (a *SauceAPI) Stop() {
	if a.proc != nil {
		a.proc.stop(2 * time.Second)
	}
	_ = os.RemoveAll(a.dir)
}
