package plugin

import (
	"net/http"
	"net/url"
	"strings"
)

// SC5's options whose values are secrets (docs: the `sc run` CLI
// reference): the access key, upstream-proxy credentials (--auth
// user:pass@host:port), the API server's basic auth and request headers
// (which may carry tokens). The proxies' URLs may carry a user:pass@.
var (
	secretOptions = map[string]bool{"access-key": true, "auth": true, "api-basic-auth": true, "header": true}
	proxyOptions  = map[string]bool{"proxy": true, "proxy-sauce": true}
	// shortOptions maps the one-letter flags of those options.
	shortOptions = map[string]string{"k": "access-key", "a": "auth", "H": "header", "x": "proxy"}
)

// optionOfEnv is the sc run option a SAUCE_* variable sets, or "".
func optionOfEnv(name string) string {
	opt, ok := strings.CutPrefix(name, "SAUCE_")
	if !ok {
		return ""
	}
	return strings.ReplaceAll(strings.ToLower(opt), "_", "-")
}

// SecretsOfOption returns what must be masked in the value of an sc run
// option (or of a variable whose name says it holds a secret).
func SecretsOfOption(opt, value string) []string {
	if value == "" {
		return nil
	}
	upper := strings.ToUpper(opt)
	switch {
	case secretOptions[opt], strings.Contains(upper, "PASSWORD"), strings.Contains(upper, "TOKEN"), strings.Contains(upper, "SECRET"):
		out := []string{value}
		// user:pass lists (auth, api-basic-auth) and Name: value headers:
		// the part after the first ':' alone is secret too.
		for _, item := range strings.Split(value, ",") {
			userinfo, _, _ := strings.Cut(item, "@")
			if _, pass, ok := strings.Cut(userinfo, ":"); ok && strings.TrimSpace(pass) != "" {
				out = append(out, userinfo, strings.TrimSpace(pass))
			}
		}
		return out
	case proxyOptions[opt]:
		return ProxyPassword(value)
	}
	return nil
}

// ProxyPassword returns the user:pass and the password of a proxy address
// given as a URL or as user:pass@host:port.
func ProxyPassword(v string) []string {
	if !strings.Contains(v, "://") {
		v = "http://" + v
	}
	u, err := url.Parse(v)
	if err != nil || u.User == nil {
		if i := strings.LastIndex(v, "@"); i > 0 {
			// Unparseable but holding credentials: mask all of them.
			userinfo := v[strings.Index(v, "://")+3 : i]
			return []string{userinfo}
		}
		return nil
	}
	pass, ok := u.User.Password()
	if !ok || pass == "" {
		return nil
	}
	return []string{u.User.Username() + ":" + pass, pass}
}

// SecretsOfEnv returns what must be masked in a container's environment
// (NAME=value entries).
func SecretsOfEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		name, value, _ := strings.Cut(kv, "=")
		if opt := optionOfEnv(name); opt != "" {
			out = append(out, SecretsOfOption(opt, value)...)
		}
	}
	return out
}

// SecretArg is an sc run argument that holds a secret.
type SecretArg struct {
	Index   int // of the argument holding the value
	Secrets []string
}

// SecretArgs finds the arguments that hold secrets, in the --name=value,
// --name value and -k value forms.
func SecretArgs(args []string) []SecretArg {
	var out []SecretArg
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if long, ok := shortOptions[name]; ok && !strings.HasPrefix(a, "--") {
			name = long
		}
		if !secretOptions[name] && !proxyOptions[name] {
			continue
		}
		at := i
		if !hasValue && i+1 < len(args) {
			i++
			at, value = i, args[i]
		}
		if s := SecretsOfOption(name, value); len(s) > 0 {
			out = append(out, SecretArg{Index: at, Secrets: s})
		}
	}
	return out
}

// SecretsOfArgs returns what must be masked in sc run's arguments.
func SecretsOfArgs(args []string) []string {
	var out []string
	for _, a := range SecretArgs(args) {
		out = append(out, a.Secrets...)
	}
	return out
}

// EnvList turns a map of variables into NAME=value entries.
func EnvList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// Secrets returns every secret the configuration hands on: the access key,
// the registry password, and the secret values among the proxies, env and
// sc_args. The masker masks exactly these values.
func (c Config) Secrets() []string {
	out := []string{c.AccessKey.Value(), c.RegistryPassword()}
	out = append(out, ProxyPassword(c.Proxy)...)
	out = append(out, ProxyPassword(c.ProxySauce)...)
	out = append(out, SecretsOfEnv(EnvList(c.Env))...)
	return append(out, SecretsOfArgs(c.SCArgs)...)
}

// APIBasicAuth returns the credentials SC's API wants (--api-basic-auth,
// SAUCE_API_BASIC_AUTH), from a container's environment and arguments.
func APIBasicAuth(env, args []string) (user, pass string, ok bool) {
	var v string
	for _, kv := range env {
		if val, found := strings.CutPrefix(kv, "SAUCE_API_BASIC_AUTH="); found {
			v = val
		}
	}
	for i, a := range args {
		if val, found := strings.CutPrefix(a, "--api-basic-auth="); found {
			v = val
		} else if a == "--api-basic-auth" && i+1 < len(args) {
			v = args[i+1]
		}
	}
	return strings.Cut(v, ":")
}

// WithBasicAuth returns a client that sends user:pass with every request.
func WithBasicAuth(c *http.Client, user, pass string) *http.Client {
	base := c.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	out := *c
	out.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		r = r.Clone(r.Context())
		r.SetBasicAuth(user, pass)
		return base.RoundTrip(r)
	})
	return &out
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
