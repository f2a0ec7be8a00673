// Command sc is a stand-in for the Sauce Connect 5 binary in the
// saucelabs/sauce-connect image. It stands in for Sauce's cloud, not for
// Docker, and follows SC5's documentation, not the plugin's expectations:
//
//   - `sc run` takes the options of the `sc run` CLI reference
//     (docs.saucelabs.com/dev/cli/sauce-connect-5/run), each also as a
//     SAUCE_<OPTION> variable, and a YAML config file (SAUCE_CONFIG_FILE /
//     --config-file), ranked flags over variables over the file
//     (…/sauce-connect-5/guides/configuration). It refuses unknown flags,
//     missing required options and invalid values, and exits non-zero.
//   - The API server listens on a unix socket, and on TCP only when
//     --api-address / SAUCE_API_ADDRESS is set; /readyz answers 200 once the
//     tunnel is up, 503 before; /healthz, /info and /version; with
//     --api-basic-auth every endpoint wants those credentials
//     (…/sauce-connect-5/guides/api-server, …/guides/readiness-checks).
//   - Log lines are "<date> <time> [component] [LEVEL] message"; the ready
//     line is "Sauce Connect is up, you may start your tests"; a fatal error
//     is "fatal error exiting: <cause>", "create tunnel: <msg>" for a tunnel
//     that Sauce Labs refused (…/sauce-connect-5/operation/troubleshooting).
//   - SIGINT and SIGTERM shut it down gracefully (closing its tunnel at the
//     REST API stand-in first, when it registered with one: rest.go).
//
// Not documented, and chosen here (the plugin's decisions must not rest on
// them): the exact text of a refused login or of the tunnel limit, the
// wording of flag errors (cobra's, which SC5's CLI uses), exit codes (1 on
// any error, 0 after a signal), how long a drain takes, and the 401 body.
//
// Knobs, for tests only (all optional):
//
//	SAUCE_STANDIN_READY_DELAY  time from start to ready (default 1s)
//	SAUCE_STANDIN_MODE         ok | bad-credentials | tunnel-limit | network-error | never-ready | crash-after-ready
//	SAUCE_STANDIN_CRASH_AFTER  time from ready to the crash in crash-after-ready mode (default 1s)
//	SAUCE_STANDIN_DRAIN        time spent draining after SIGTERM/SIGINT (default 0)
//	SAUCE_STANDIN_LEAK_KEY     "true": log every secret it was given, to prove the plugin masks them
//	SAUCE_STANDIN_QUIET_READY  "true": do not log the ready line (readiness shows only on /readyz)
//	SAUCE_STANDIN_REST_URL     the stand-in REST API (sc standin-rest, rest.go) to register the tunnel with
//
// and one endpoint, /standin/get?url=…, that plays a browser in Sauce's
// cloud requesting url through the tunnel: it fetches url from SC's own
// network and applies --proxy-localhost to localhost targets.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"
)

const (
	socketPath = "/tmp/sc.sock"
	version    = "5.2.2-standin"
)

func main() {
	if len(os.Args) < 2 {
		fail(errors.New(`Error: requires a command: run, ready or version`))
	}
	switch os.Args[1] {
	case "run":
		if err := run(os.Args[2:]); err != nil {
			var flagErr *flagError
			if errors.As(err, &flagErr) {
				fail(err)
			}
			logf("control", "ERROR", "fatal error exiting: %v", err)
			os.Exit(1)
		}
	case "ready":
		os.Exit(ready())
	case "version":
		fmt.Println("Sauce Connect Proxy version", version)
	case "standin-rest":
		fail(serveREST(os.Args[2:]))
	default:
		fail(fmt.Errorf("Error: unknown command %q for \"sc\"", os.Args[1]))
	}
}

func logf(component, level, format string, args ...any) {
	ts := time.Now().UTC().Format("2006/01/02 15:04:05.000000")
	fmt.Fprintf(os.Stdout, "%s [%s] [%s] %s\n", ts, component, level, fmt.Sprintf(format, args...))
}

// fail prints a command-line error the way cobra does and exits 1.
func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

// flagError is a command-line error (cobra's wording: not documented).
type flagError struct{ msg string }

func (e *flagError) Error() string { return "Error: " + e.msg }

// option is one documented `sc run` option.
type option struct {
	name, short string
	check       func(string) error
}

var (
	oneOf = func(vals ...string) func(string) error {
		return func(v string) error {
			if !slices.Contains(vals, v) {
				return fmt.Errorf("must be one of %s", strings.Join(vals, ", "))
			}
			return nil
		}
	}
	isBool = func(v string) error { _, err := strconv.ParseBool(v); return err }
	isInt  = func(v string) error { _, err := strconv.Atoi(v); return err }
	isDur  = func(v string) error { _, err := time.ParseDuration(v); return err }
	isAddr = func(v string) error { _, _, err := net.SplitHostPort(v); return err }
	isPair = func(v string) error {
		if u, p, ok := strings.Cut(v, ":"); !ok || u == "" || p == "" {
			return errors.New("want user:password")
		}
		return nil
	}
	isKVs = func(v string) error {
		for _, kv := range strings.Split(v, ",") {
			if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
				return fmt.Errorf("%q is not key=value", kv)
			}
		}
		return nil
	}
	isRegexps = func(v string) error {
		for _, re := range strings.Split(v, ",") {
			if re == "all" {
				continue
			}
			if _, err := regexp.Compile(strings.TrimPrefix(re, "-")); err != nil {
				return err
			}
		}
		return nil
	}
	isURL = func(v string) error {
		if !strings.Contains(v, "://") {
			v = "http://" + v
		}
		u, err := url.Parse(v)
		if err == nil && u.Host == "" {
			err = errors.New("no host")
		}
		return err
	}
	anything = func(string) error { return nil }
)

// regions are SC5's regions; the suffixed names are what Sauce's Node
// library passes (inferred to work).
var regions = map[string]string{
	"us-west": "us-west-1", "us-west-1": "us-west-1",
	"us-east": "us-east-4", "us-east-4": "us-east-4",
	"eu-central": "eu-central-1", "eu-central-1": "eu-central-1",
}

// options are those of the `sc run` CLI reference.
var options = []option{
	{"username", "u", anything}, {"access-key", "k", anything},
	{"region", "r", func(v string) error {
		if _, ok := regions[v]; !ok {
			return errors.New("must be one of us-west, us-east, eu-central")
		}
		return nil
	}},
	{"tunnel-name", "i", anything}, {"config-file", "c", anything}, {"rest-url", "", isURL},
	{"metadata", "M", isKVs}, {"shared", "s", oneOf("all")}, {"tunnel-pool", "t", isBool},
	{"deny-domains", "F", isRegexps}, {"direct-domains", "D", isRegexps}, {"tunnel-domains", "T", isRegexps},
	{"tls-passthrough-domains", "B", isRegexps}, {"tls-resign-domains", "b", isRegexps},
	{"tunnel-connections", "", isInt}, {"tunnel-max-concurrent-streams", "", isInt},
	{"auth", "a", anything}, {"header", "H", anything}, {"pac", "p", anything},
	{"proxy", "x", isURL}, {"proxy-sauce", "", isURL}, {"proxy-localhost", "", oneOf("allow", "deny", "direct")},
	{"debug-address", "", isAddr}, {"dns-server", "n", anything}, {"dns-round-robin", "", isBool}, {"dns-timeout", "", isDur},
	{"cacert-file", "", anything}, {"http-dial-attempts", "", isInt}, {"http-dial-backoff", "", isDur}, {"http-dial-timeout", "", isDur},
	{"http-idle-conn-timeout", "", isDur}, {"http-response-header-timeout", "", isDur}, {"http-tls-handshake-timeout", "", isDur},
	{"http-tls-keylog-file", "", anything},
	{"api-address", "", isAddr}, {"api-basic-auth", "", isPair}, {"api-idle-timeout", "", isDur},
	{"log-file", "", anything}, {"log-format", "", oneOf("text", "json")}, {"log-level", "", oneOf("error", "info", "debug")},
	{"log-http", "", anything},
}

func lookup(name string, short bool) (option, bool) {
	for _, o := range options {
		if !short && o.name == name || short && o.short != "" && o.short == name {
			return o, true
		}
	}
	return option{}, false
}

// config is the options in force: flags over SAUCE_* variables over the file.
type config map[string]string

func loadConfig(args []string) (config, error) {
	flags := config{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "-" {
			return nil, &flagError{fmt.Sprintf("unknown command %q for \"sc run\"", a)}
		}
		short := !strings.HasPrefix(a, "--")
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		o, ok := lookup(name, short)
		if !ok {
			if short {
				return nil, &flagError{fmt.Sprintf("unknown shorthand flag: '%s' in %s", name, a)}
			}
			return nil, &flagError{"unknown flag: --" + name}
		}
		if !hasVal {
			if i+1 >= len(args) {
				return nil, &flagError{"flag needs an argument: --" + o.name}
			}
			i++
			val = args[i]
		}
		flags[o.name] = val
	}
	c := config{}
	file := flags["config-file"]
	if file == "" {
		file = os.Getenv("SAUCE_CONFIG_FILE")
	}
	if file != "" {
		raw, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("config file: %w", err)
		}
		var fromFile map[string]any
		if err := yaml.Unmarshal(raw, &fromFile); err != nil {
			return nil, fmt.Errorf("config file %s: %w", file, err)
		}
		for k, v := range fromFile {
			if _, ok := lookup(k, false); !ok {
				return nil, fmt.Errorf("config file %s: unknown option %q", file, k)
			}
			if list, ok := v.([]any); ok {
				parts := make([]string, len(list))
				for i, p := range list {
					parts[i] = fmt.Sprint(p)
				}
				c[k] = strings.Join(parts, ",")
			} else {
				c[k] = fmt.Sprint(v)
			}
		}
	}
	for _, o := range options {
		if v, ok := os.LookupEnv("SAUCE_" + strings.ToUpper(strings.ReplaceAll(o.name, "-", "_"))); ok && v != "" {
			c[o.name] = v
		}
	}
	for k, v := range flags {
		c[k] = v
	}
	var missing []string
	for _, req := range []string{"username", "access-key", "region", "tunnel-name"} {
		if c[req] == "" {
			missing = append(missing, strconv.Quote(req))
		}
	}
	if len(missing) > 0 {
		return nil, &flagError{fmt.Sprintf("required flag(s) %s not set", strings.Join(missing, ", "))}
	}
	for _, o := range options {
		if v, ok := c[o.name]; ok {
			if err := o.check(v); err != nil {
				return nil, &flagError{fmt.Sprintf("invalid argument %q for \"--%s\" flag: %v", v, o.name, err)}
			}
		}
	}
	if c["tunnel-domains"] != "" && c["direct-domains"] != "" {
		return nil, &flagError{"if any flags in the group [direct-domains tunnel-domains] are set none of the others can be; [direct-domains tunnel-domains] were all set"}
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
	logf("control", "INFO", "username=%s region=%s tunnel-name=%s", c["username"], c["region"], c["tunnel-name"])
	if os.Getenv("SAUCE_STANDIN_LEAK_KEY") == "true" {
		for _, k := range []string{"access-key", "api-basic-auth", "auth", "header", "proxy", "proxy-sauce"} {
			if c[k] != "" {
				logf("control", "DEBUG", "%s=%s (leaked on purpose)", k, c[k])
			}
		}
	}

	var isReady atomic.Bool
	var tunnelID atomic.Value
	tunnelID.Store("standin-" + fmt.Sprint(os.Getpid()))
	if err := serveAPI(ctx, c, &isReady, &tunnelID); err != nil {
		return err
	}
	rest := restClient{base: os.Getenv("SAUCE_STANDIN_REST_URL"), user: c["username"], key: c["access-key"]}

	switch mode {
	case "bad-credentials":
		time.Sleep(readyDelay / 4)
		return errors.New("create tunnel: Unauthorized: 401 Unauthorized: invalid username or access key")
	case "tunnel-limit":
		time.Sleep(readyDelay / 4)
		return errors.New("create tunnel: Too many active tunnels: 10; allowed: 10")
	case "network-error":
		time.Sleep(readyDelay / 4)
		return fmt.Errorf("create tunnel: dial tcp: lookup api.%s.saucelabs.com: no such host", regions[c["region"]])
	}

	timer := time.NewTimer(readyDelay)
	var crash <-chan time.Time
	var remote <-chan error
	for {
		select {
		case err := <-remote:
			return err
		case <-ctx.Done():
			stop()
			logf("control", "INFO", "shutting down, draining for %s", drain)
			time.Sleep(drain)
			if rest.base != "" && isReady.Load() {
				if err := rest.call(context.Background(), http.MethodDelete, "/tunnels/"+tunnelID.Load().(string), nil, nil); err != nil {
					logf("control", "ERROR", "close tunnel: %v", err)
				}
			}
			logf("control", "INFO", "tunnel closed, bye")
			return nil
		case <-timer.C:
			if mode == "never-ready" {
				logf("control", "INFO", "establishing tunnel connections, still waiting")
				timer.Reset(10 * time.Second)
				continue
			}
			if rest.base != "" {
				var t restTunnel
				reg := registration{Name: c["tunnel-name"], Pool: c["tunnel-pool"] == "true", Shared: c["shared"] == "all", Metadata: metadataOf(c["metadata"])}
				if err := rest.call(ctx, http.MethodPost, "/tunnels", reg, &t); err != nil {
					return fmt.Errorf("create tunnel: %w", err)
				}
				tunnelID.Store(t.ID)
				remote = followTunnel(ctx, rest, t.ID)
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

// followTunnel watches the tunnel at Sauce Labs, as SC's control
// connection does: once Sauce ends it (another tunnel took its name, a
// DELETE), SC exits with an error, as on a remote shutdown.
func followTunnel(ctx context.Context, rest restClient, id string) <-chan error {
	out := make(chan error, 1)
	go func() {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			var t restTunnel
			err := rest.call(ctx, http.MethodGet, "/tunnels/"+id, nil, &t)
			if err == nil && t.Status != "running" {
				out <- fmt.Errorf("tunnel %s was shut down remotely (status %s)", id, t.Status)
				return
			}
		}
	}()
	return out
}

func serveAPI(ctx context.Context, c config, isReady *atomic.Bool, tunnelID *atomic.Value) error {
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
			"tunnel_id":     tunnelID.Load().(string),
			"tunnel_name":   c["tunnel-name"],
			"tunnel_server": "tunnel-" + regions[c["region"]] + ".standin.invalid",
			"tunnel_host":   "standin",
		})
	})
	mux.HandleFunc("/standin/get", func(w http.ResponseWriter, r *http.Request) { browse(w, r, c, isReady) })
	var handler http.Handler = mux
	if auth := c["api-basic-auth"]; auth != "" {
		user, pass, _ := strings.Cut(auth, ":")
		handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="Sauce Connect"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			mux.ServeHTTP(w, r)
		})
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
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
	if addr := c["api-address"]; addr != "" {
		tl, err := net.Listen("tcp", addr)
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

// browse plays a browser in Sauce's cloud that requests url through the
// tunnel: SC fetches it from its own network. --proxy-localhost deny (the
// default) refuses localhost targets.
func browse(w http.ResponseWriter, r *http.Request, c config, isReady *atomic.Bool) {
	if !isReady.Load() {
		http.Error(w, "tunnel not ready", http.StatusServiceUnavailable)
		return
	}
	target, err := url.Parse(r.URL.Query().Get("url"))
	if err != nil || target.Host == "" {
		http.Error(w, "want ?url=http://host:port/path", http.StatusBadRequest)
		return
	}
	host := target.Hostname()
	local := host == "localhost" || strings.HasPrefix(host, "127.") || host == "::1"
	if local && c["proxy-localhost"] != "allow" && c["proxy-localhost"] != "direct" {
		logf("proxy", "ERROR", "GET %s: localhost is denied (--proxy-localhost %s)", target, cmpOr(c["proxy-localhost"], "deny"))
		http.Error(w, "localhost is denied by --proxy-localhost", http.StatusForbidden)
		return
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get(target.String())
	if err != nil {
		logf("proxy", "ERROR", "GET %s: %v", target, err)
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, io.LimitReader(resp.Body, 1<<20))
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// ready is the image's health check: 0 when /readyz answers 200.
func ready() int {
	hc := &http.Client{Timeout: 2 * time.Second}
	u := "http://sc/readyz"
	if a := os.Getenv("SAUCE_API_ADDRESS"); a != "" {
		host, port, _ := net.SplitHostPort(a)
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "127.0.0.1"
		}
		u = "http://" + net.JoinHostPort(host, port) + "/readyz"
	} else {
		hc.Transport = &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socketPath)
		}}
	}
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return 1
	}
	if user, pass, ok := strings.Cut(os.Getenv("SAUCE_API_BASIC_AUTH"), ":"); ok {
		req.SetBasicAuth(user, pass)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 1
	}
	return 0
}
