package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// Options are the plugin's collaborators, injected by main and by tests.
type Options struct {
	// Out receives everything the plugin prints; main passes a masking writer.
	Out io.Writer
	// Masker masks secrets in what the plugin writes; a stop step adds the
	// secrets it learns from the tunnel.
	Masker *Masker
	// Log is the plugin's logger, writing to Out.
	Log *logrus.Logger
	// Now is the clock.
	Now func() time.Time
	// HTTP reads SC's API.
	HTTP *http.Client
}

// Session is what both backends share for one run of the plugin: the
// configuration, the output, the logger, the masker, the printer of SC's
// last lines and the reader of SC's API.
type Session struct {
	Cfg Config
	Opt Options
	Log *logrus.Entry
}

// NewSession fills in the defaults of o.
func NewSession(c Config, o Options) *Session {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Masker == nil {
		o.Masker = NewMasker(c.Secrets()...)
	}
	if o.Log == nil {
		o.Log = logrus.New()
		o.Log.SetOutput(io.Discard)
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.HTTP == nil {
		o.HTTP = &http.Client{Timeout: probeTimeout, Transport: directTransport()}
	}
	if user, pass, ok := APIBasicAuth(EnvList(c.Env), c.SCArgs, c.FileOptions); ok {
		o.HTTP = WithBasicAuth(o.HTTP, user, pass)
	}
	if c.APIAuth != nil {
		pass, _ := c.APIAuth.Password()
		o.HTTP = WithBasicAuth(o.HTTP, c.APIAuth.Username(), pass)
	}
	log := o.Log.WithField("tunnel", c.TunnelName)
	if c.Action == ActionWait && c.TunnelNameDerived {
		// SC names its tunnel itself; its /info tells the name once ready.
		log = logrus.NewEntry(o.Log)
	}
	return &Session{Cfg: c, Opt: o, Log: log}
}

// directTransport reaches SC's API directly, whatever HTTP_PROXY and
// HTTPS_PROXY say: runners hand those to every step, and a corporate proxy
// cannot reach a container's address (nor should see SC's API). Only calls
// to Sauce Labs go through a proxy (proxy_sauce, or the runner's).
func directTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	return t
}

// Get reads a URL of SC's API: the status and (up to 64 KiB of) the body.
func (s *Session) Get(ctx context.Context, url string) (int, string, error) {
	return APIGet(ctx, s.Opt.HTTP, url)
}

// Readyz asks SC's API at api whether the tunnel is ready: 200 is ready.
func (s *Session) Readyz(ctx context.Context, api string) (int, error) {
	return Readyz(ctx, s.Opt.HTTP, api)
}

// Readyz asks SC's API at api, through client, whether the tunnel is
// ready: 200 is ready.
func Readyz(ctx context.Context, client *http.Client, api string) (int, error) {
	code, _, err := APIGet(ctx, client, api+"/readyz")
	return code, err
}

// scInfo is what SC5's /info tells of its tunnel.
type scInfo struct {
	TunnelName string `json:"tunnel_name"`
	TunnelID   string `json:"tunnel_id"`
}

// info reads SC's /info at api, bounded by probeTimeout; nothing of it
// when it does not answer 200 with JSON.
func (s *Session) info(ctx context.Context, api string) (scInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	code, body, err := s.Get(ctx, api+"/info")
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("/info answered HTTP %d", code)
	}
	var info scInfo
	if err == nil {
		err = json.Unmarshal([]byte(body), &info)
	}
	if err != nil {
		return scInfo{}, err
	}
	return info, nil
}

// PrintLog shows the end of SC's log between markers, masked as all output.
func (s *Session) PrintLog(tail string) {
	if tail = strings.TrimRight(tail, "\n"); tail != "" {
		fmt.Fprintf(s.Opt.Out, "--- last lines of sauce connect's log ---\n%s\n--- end of log ---\n", tail)
	}
}

// FailureGrace bounds the graceful stop of a tunnel that failed to come
// up, so that cleanup ends before a runner's own kill timeout.
const FailureGrace = 5 * time.Second

// TailLines is how much of SC's log is shown with a failure or a stop.
const TailLines = 50

// Report prints where the ready tunnel answers and writes the outputs.
func (s *Session) Report(t *Tunnel) {
	how := fmt.Sprintf("ready in %s", t.ReadyIn.Round(time.Millisecond))
	if t.Reused {
		how = "reused"
	}
	region := ""
	if s.Cfg.Region != "" {
		region = " in region " + string(s.Cfg.Region)
	}
	fmt.Fprintf(s.Opt.Out, "tunnel %s is up%s (%s, %s)\n", t.Name, region, how, t.Where())
	if t.Endpoints.Container != "" {
		fmt.Fprintf(s.Opt.Out, "  API for container steps: %s\n", t.Endpoints.Container)
	}
	if t.Endpoints.Host != "" {
		fmt.Fprintf(s.Opt.Out, "  API for host steps:      %s\n", t.Endpoints.Host)
	}
	// A runner may hand the step a path its container cannot see (act's
	// self-hosted mode does, for every container action): a warning each.
	for _, err := range writeOutputs(s.Cfg, t, s.Opt.Out) {
		s.Log.Warnf("could not write the step output %v", err)
	}
}

// APIGet GETs a URL of SC's API and returns the status and (up to 64 KiB
// of) the body.
func APIGet(ctx context.Context, client *http.Client, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(b), err
}
