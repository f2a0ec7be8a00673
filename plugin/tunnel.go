package plugin

import (
	"strings"
	"time"
)

// Tunnel is a running, ready tunnel, as a backend hands it over.
type Tunnel struct {
	// ID is the SC container's ID or the tunnel pod's name; Ref is how
	// people see it (the container's short ID, the pod's name), and Kind
	// what it is ("container", "pod").
	ID, Ref, Kind string
	Name          string
	// SauceID is the tunnel's ID at Sauce Labs, once Sauce confirmed it
	// ("" when it was not asked, or could not be).
	SauceID   string
	Endpoints Endpoints
	ReadyIn   time.Duration
	Reused    bool
}

// Endpoints are the addresses of SC's API.
type Endpoints struct {
	// Probe is where the plugin itself reaches the API.
	Probe string
	// Container is the URL later container steps use (the alias when SC is
	// on a user-defined network, else its IP).
	Container string
	// Host is the URL on the host, when the API is published or SC uses the
	// host's network.
	Host string
}

// Where is the tunnel's SC for people: "container 4f2c9d1e8a7b", "pod
// sc-build-42".
func (t Tunnel) Where() string {
	return strings.TrimSpace(t.Kind + " " + t.Ref)
}
