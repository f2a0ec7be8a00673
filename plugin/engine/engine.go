// Package engine is the only package of drone-sauce-connect that talks to the
// Docker Engine API. It hides github.com/moby/moby/client behind a few verbs
// that take and return this package's own types, so the rest of the plugin
// never sees an SDK type and a 0.x bump of the SDK stays local.
package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/backoff"
)

// userAgent is sent with every request so engine logs name the caller.
const userAgent = "drone-sauce-connect"

// pingTimeout bounds the first contact with the engine.
const pingTimeout = 10 * time.Second

// ErrUnreachable means no Docker engine answered at the configured address.
var ErrUnreachable = errors.New("docker engine unreachable")

// ErrDenied means the engine's socket refused this process: it exists, but
// the user the step runs as may not use it.
var ErrDenied = errors.New("docker socket permission denied")

// ErrTooOld means the engine answered but speaks an API older than the client supports.
var ErrTooOld = errors.New("docker engine too old")

// Engine performs the plugin's Docker operations against one engine.
type Engine struct {
	api *client.Client
	// Host is the engine address the client dials (unix:///var/run/docker.sock, tcp://…).
	Host string
	// Access is how the engine is reached (its address and TLS files).
	Access Access
	// APIVersion is the negotiated API version.
	APIVersion string
	// OnRetry, when set, hears of each transient failure before its retry.
	OnRetry func(Retry)
	// RequestTimeout bounds one request (0: requestTimeout).
	RequestTimeout time.Duration
}

// NewEnv connects to the engine named by the standard DOCKER_* variables,
// negotiates the API version and pings it, so that an absent or old engine
// fails here with a clear error instead of on the first real call.
func NewEnv(ctx context.Context) (*Engine, error) {
	access, err := AccessFromEnv(os.Getenv)
	if err != nil {
		return nil, err
	}
	return Connect(ctx, access)
}

// Connect connects to the engine as access says, negotiates the API
// version and pings it.
func Connect(ctx context.Context, access Access) (*Engine, error) {
	opts := []client.Opt{client.WithUserAgent(userAgent), client.WithAPIVersionFromEnv()}
	if t := access.TLS; t != nil {
		cfg, err := t.config()
		if err != nil {
			return nil, err
		}
		opts = append(opts, client.WithHTTPClient(&http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, CheckRedirect: client.CheckRedirect}))
	}
	api, err := client.New(append(opts, client.WithHost(access.Host))...)
	if err != nil {
		return nil, fmt.Errorf("configure docker client: %w", err)
	}
	e := &Engine{api: api, Host: api.DaemonHost(), Access: access}
	ping, err := e.firstPing(ctx)
	switch {
	case err == nil:
	case ping.APIVersion != "":
		_ = api.Close()
		return nil, fmt.Errorf("%w: engine at %s speaks API %s, at least %s is needed: %w",
			ErrTooOld, e.Host, ping.APIVersion, client.MinAPIVersion, err)
	case access.tlsTrouble(err) != nil:
		_ = api.Close()
		return nil, access.tlsTrouble(err)
	case socketDenied(e.Host):
		// The SDK words this error but keeps no cause to test: dial ourselves.
		_ = api.Close()
		return nil, fmt.Errorf("%w: the engine at %s refused this step: %w", ErrDenied, e.Host, err)
	default:
		_ = api.Close()
		return nil, fmt.Errorf("%w at %s: %w", ErrUnreachable, e.Host, err)
	}
	e.APIVersion = api.ClientVersion()
	return e, nil
}

// pingBudget bounds how long the first ping waits for an engine that is
// there but not answering yet: a dind service still starting, an engine
// restarting. An engine that is not there at all (no socket file) fails at
// once, so that backend auto turns to Kubernetes without delay.
const pingBudget = 30 * time.Second

// firstPing pings the engine, negotiating the API version, and retries,
// within pingBudget, while it refuses or drops connections.
func (e *Engine) firstPing(ctx context.Context) (client.PingResult, error) {
	var ping client.PingResult
	var last error
	err := backoff.Retry(ctx, backoff.Policy{First: firstBackoff, Max: maxBackoff, Until: time.Now().Add(pingBudget)}, func(ctx context.Context) error {
		pctx, cancel := context.WithTimeout(ctx, pingTimeout)
		defer cancel()
		ping, last = e.api.Ping(pctx, client.PingOptions{NegotiateAPIVersion: true})
		if last != nil && (ping.APIVersion != "" || !e.starting(last)) {
			return backoff.Permanent(last)
		}
		return last
	})
	if err != nil && last != nil {
		err = last
	}
	return ping, err
}

// starting reports whether a failed ping may be an engine still starting:
// a transient failure, at an address where an engine is (for a unix
// socket: its file exists).
func (e *Engine) starting(err error) bool {
	if path, ok := strings.CutPrefix(e.Host, "unix://"); ok {
		if _, serr := os.Stat(path); serr != nil {
			return false
		}
	}
	return transient(err) && !errors.Is(err, os.ErrPermission) && e.Access.tlsTrouble(err) == nil
}

// socketDenied reports whether host is a unix socket this process may not
// connect to.
func socketDenied(host string) bool {
	path, ok := strings.CutPrefix(host, "unix://")
	if !ok {
		return false
	}
	c, err := net.Dial("unix", path)
	if err == nil {
		c.Close()
	}
	return errors.Is(err, os.ErrPermission)
}

// Close releases the client's connections.
func (e *Engine) Close() error { return e.api.Close() }

// exists turns the error of a look-up into whether the object exists; any
// other error is returned, prefixed by what.
func exists(err error, what string) (bool, error) {
	switch {
	case err == nil:
		return true, nil
	case IsNotFound(err):
		return false, nil
	default:
		return false, fmt.Errorf("%s: %w", what, err)
	}
}

// IsNotFound reports whether err means the object does not exist.
func IsNotFound(err error) bool { return cerrdefs.IsNotFound(err) }

// IsConflict reports whether err means the request conflicts with the
// engine's state (a container name in use, a removal already in progress).
func IsConflict(err error) bool { return cerrdefs.IsConflict(err) }
