// Command sc is a stand-in for the Sauce Connect 5 binary in the
// saucelabs/sauce-connect image. It stands in for Sauce's cloud, not for
// Docker: it honours the documented SC5 contract (the `run` subcommand, the
// SAUCE_* variables, the API server on SAUCE_API_ADDRESS or else only on a
// unix socket, /readyz, /healthz, /info, /version, graceful SIGTERM) so the
// plugin's tests and demo run offline against a real engine.
//
// Knobs, for tests only (all optional):
//
//	SAUCE_STANDIN_READY_DELAY  time from start to ready (default 1s)
//	SAUCE_STANDIN_MODE         ok | bad-credentials | network-error | never-ready | crash-after-ready
//	SAUCE_STANDIN_CRASH_AFTER  time from ready to the crash in crash-after-ready mode (default 1s)
//	SAUCE_STANDIN_DRAIN        time spent draining after SIGTERM/SIGINT (default 0)
//	SAUCE_STANDIN_LEAK_KEY     "true": log the access key, to prove the plugin masks it
//	SAUCE_STANDIN_QUIET_READY  "true": do not log the ready line (readiness shows only on /readyz)
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	socketPath = "/tmp/sc.sock"
	version    = "5.2.2-standin"
)

func main() {
	if len(os.Args) < 2 {
		fatal(errors.New("usage: sc run|ready|version"))
	}
	switch os.Args[1] {
	case "run":
		if err := run(os.Args[2:]); err != nil {
			fatal(err)
		}
	case "ready":
		os.Exit(ready())
	case "version":
		fmt.Println("Sauce Connect Proxy version", version)
	default:
		fatal(fmt.Errorf("unknown command %q", os.Args[1]))
	}
}

func logf(component, level, format string, args ...any) {
	ts := time.Now().UTC().Format("2006/01/02 15:04:05.000000")
	fmt.Fprintf(os.Stdout, "%s [%s] [%s] %s\n", ts, component, level, fmt.Sprintf(format, args...))
}

func fatal(err error) {
	logf("control", "ERROR", "fatal error exiting: %v", err)
	os.Exit(1)
}

// config is the subset of SC5's `sc run` options the stand-in honours.
type config struct {
	username, accessKey, region, tunnelName, apiAddress string
}

var regions = map[string]string{
	"us-west": "us-west-1", "us-west-1": "us-west-1",
	"us-east": "us-east-4", "us-east-4": "us-east-4",
	"eu-central": "eu-central-1", "eu-central-1": "eu-central-1",
}

func loadConfig(args []string) (config, error) {
	c := config{
		username:   os.Getenv("SAUCE_USERNAME"),
		accessKey:  os.Getenv("SAUCE_ACCESS_KEY"),
		region:     os.Getenv("SAUCE_REGION"),
		tunnelName: os.Getenv("SAUCE_TUNNEL_NAME"),
		apiAddress: os.Getenv("SAUCE_API_ADDRESS"),
	}
	flags := map[string]*string{
		"username": &c.username, "u": &c.username,
		"access-key": &c.accessKey, "k": &c.accessKey,
		"region": &c.region, "r": &c.region,
		"tunnel-name": &c.tunnelName, "i": &c.tunnelName,
		"api-address": &c.apiAddress,
	}
	for i := 0; i < len(args); i++ {
		name, val, hasVal := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		p, ok := flags[name]
		if !ok {
			continue // the real sc knows many more options; the stand-in ignores them
		}
		if !hasVal && i+1 < len(args) {
			i++
			val = args[i]
		}
		*p = val
	}
	var missing []string
	for name, v := range map[string]string{"username": c.username, "access-key": c.accessKey, "region": c.region, "tunnel-name": c.tunnelName} {
		if v == "" {
			missing = append(missing, "--"+name)
		}
	}
	if len(missing) > 0 {
		return c, fmt.Errorf("required flag(s) %s not set", strings.Join(missing, ", "))
	}
	if _, ok := regions[c.region]; !ok {
		return c, fmt.Errorf("invalid region %q: must be one of us-west, us-east, eu-central", c.region)
	}
	return c, nil
}

func envDuration(name string, def time.Duration) time.Duration {
	if v := os.Getenv(name); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}

func run(args []string) error {
	c, err := loadConfig(args)
	if err != nil {
		return err
	}
	mode := os.Getenv("SAUCE_STANDIN_MODE")
	readyDelay := envDuration("SAUCE_STANDIN_READY_DELAY", time.Second)
	drain := envDuration("SAUCE_STANDIN_DRAIN", 0)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	logf("control", "INFO", "Sauce Connect Proxy version %s (stand-in)", version)
	logf("control", "INFO", "username=%s region=%s tunnel-name=%s", c.username, c.region, c.tunnelName)
	if os.Getenv("SAUCE_STANDIN_LEAK_KEY") == "true" {
		logf("control", "DEBUG", "access-key=%s", c.accessKey)
	}

	var isReady atomic.Bool
	if err := serveAPI(ctx, c, &isReady); err != nil {
		return err
	}

	switch mode {
	case "bad-credentials":
		time.Sleep(readyDelay / 4)
		return errors.New("create tunnel: Unauthorized: 401 Unauthorized: invalid username or access key")
	case "network-error":
		time.Sleep(readyDelay / 4)
		return fmt.Errorf("create tunnel: dial tcp: lookup api.%s.saucelabs.com: no such host", regions[c.region])
	}

	timer := time.NewTimer(readyDelay)
	var crash <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			stop()
			logf("control", "INFO", "shutting down, draining for %s", drain)
			time.Sleep(drain)
			logf("control", "INFO", "tunnel closed, bye")
			return nil
		case <-timer.C:
			if mode == "never-ready" {
				logf("control", "INFO", "establishing tunnel connections, still waiting")
				timer.Reset(10 * time.Second)
				continue
			}
			isReady.Store(true)
			logf("control", "INFO", "ready_at_unix_nano=%d", time.Now().UnixNano())
			if os.Getenv("SAUCE_STANDIN_QUIET_READY") != "true" {
				logf("control", "INFO", "Sauce Connect is up, you may start your tests")
			}
			if mode == "crash-after-ready" {
				crash = time.After(envDuration("SAUCE_STANDIN_CRASH_AFTER", time.Second))
			}
		case <-crash:
			return errors.New("tunnel connection lost: stand-in crash")
		}
	}
}

func serveAPI(ctx context.Context, c config, isReady *atomic.Bool) error {
	mux := http.NewServeMux()
	status := func(w http.ResponseWriter, _ *http.Request) {
		if isReady.Load() {
			fmt.Fprintln(w, "OK")
			return
		}
		http.Error(w, "not ready", http.StatusServiceUnavailable)
	}
	mux.HandleFunc("/readyz", status)
	mux.HandleFunc("/healthz", status)
	mux.HandleFunc("/version", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"version": version})
	})
	mux.HandleFunc("/info", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{
			"tunnel_id":     "standin-" + fmt.Sprint(os.Getpid()),
			"tunnel_name":   c.tunnelName,
			"tunnel_server": "tunnel-" + regions[c.region] + ".standin.invalid",
			"tunnel_host":   "standin",
		})
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	if err := os.MkdirAll("/tmp", 0o1777); err != nil {
		return err
	}
	_ = os.Remove(socketPath)
	listeners := []string{"unix:" + socketPath}
	ul, err := net.Listen("unix", socketPath)
	if err != nil {
		return fmt.Errorf("api server: %w", err)
	}
	go func() { _ = srv.Serve(ul) }()
	if c.apiAddress != "" {
		tl, err := net.Listen("tcp", c.apiAddress)
		if err != nil {
			return fmt.Errorf("api server: %w", err)
		}
		listeners = append(listeners, "tcp:"+tl.Addr().String())
		go func() { _ = srv.Serve(tl) }()
	}
	logf("api", "INFO", "api server listening on %s", strings.Join(listeners, ", "))
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	return nil
}

// ready is the image's health check: 0 when /readyz answers 200.
func ready() int {
	hc := &http.Client{Timeout: 2 * time.Second}
	url := "http://sc/readyz"
	if a := os.Getenv("SAUCE_API_ADDRESS"); a != "" {
		host, port, _ := net.SplitHostPort(a)
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "127.0.0.1"
		}
		url = "http://" + net.JoinHostPort(host, port) + "/readyz"
	} else {
		hc.Transport = &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socketPath)
		}}
	}
	resp, err := hc.Get(url)
	if err != nil {
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 1
	}
	return 0
}
