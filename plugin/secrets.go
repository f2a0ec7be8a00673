package plugin

import (
	"net/http"
	"net/url"
	"strings"
)

// What of SC's configuration is secret comes from the one table of SC's
// options (scoptions.go): the access key, upstream-proxy credentials
// (--auth user:pass@host:port), the API server's basic auth, request
// headers (which may carry tokens), and the user:pass of the proxies' and
// the PAC file's URLs.

// SecretsOfOption returns what must be masked in the value of an sc run
// option given by its long name (or of a variable whose name says it holds
// a secret).
func SecretsOfOption(long, value string) []string {
	o, known := optionNamed(long)
	return o.secrets(known, value)
}

// ProxyPassword returns what is secret in a URL given as a URL or as
// user:pass@host:port: the user:pass and the password, as written and
// percent-decoded (a log may show either).
func ProxyPassword(v string) []string {
	at := strings.LastIndex(v, "@")
	if at < 0 {
		return nil
	}
	userinfo := v[:at]
	if i := strings.Index(userinfo, "://"); i >= 0 {
		userinfo = userinfo[i+3:]
	}
	user, pass, ok := strings.Cut(userinfo, ":")
	if !ok || pass == "" {
		return nil
	}
	out := []string{userinfo, pass}
	if u, err := url.PathUnescape(user); err == nil {
		for _, p := range urlForms(pass) {
			out = append(out, u+":"+p, p)
		}
	}
	return out
}

// urlForms are a password's other forms: percent-decoded, and
// percent-encoded as a URL's userinfo would carry it.
func urlForms(pass string) []string {
	var out []string
	if d, err := url.PathUnescape(pass); err == nil && d != pass {
		out = append(out, d)
	}
	if e := url.UserPassword("u", pass).String(); strings.TrimPrefix(e, "u:") != pass {
		out = append(out, strings.TrimPrefix(e, "u:"))
	}
	return out
}

// SecretsOfEnv returns what must be masked in a container's environment
// (NAME=value entries): the values of SC's secret options.
func SecretsOfEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		name, value, _ := strings.Cut(kv, "=")
		if o, known, ok := optionOfEnv(name); ok {
			out = append(out, o.secrets(known, value)...)
		}
	}
	return out
}

// secretArg is an sc run argument that holds a secret.
type secretArg struct {
	Index   int // of the token holding the value
	Secrets []string
}

// SecretArgs finds the tokens of SC's command line that hold secrets, in
// every form SC's parser takes (see parseSCArgs); a command line it
// cannot parse has every token after an option that takes a value masked.
func SecretArgs(args []string) []secretArg {
	parsed, _ := parseSCArgs(args)
	var out []secretArg
	for _, a := range parsed {
		if s := a.Opt.secrets(a.Known, a.Value); len(s) > 0 {
			// The token holding the value, whole: -aUSER:PASS@host and
			// --auth=USER:PASS@host hide the secret inside it.
			out = append(out, secretArg{Index: a.Last, Secrets: append(s, args[a.Last])})
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
// the registry password, the secret values among the proxies, env, sc_args
// and config_file, and the credentials of api_url. The masker masks
// exactly these values.
func (c Config) Secrets() []string {
	out := []string{c.AccessKey.Value(), c.RegistryPassword()}
	out = append(out, ProxyPassword(c.Proxy)...)
	out = append(out, ProxyPassword(c.ProxySauce)...)
	if c.APIAuth != nil {
		out = append(out, ProxyPassword(c.APIAuth.String()+"@h")...)
	}
	out = append(out, ProxyPassword(c.RESTURL)...)
	out = append(out, SecretsOfEnv(EnvList(c.Env))...)
	out = append(out, SecretsOfFile(c.FileOptions)...)
	return append(out, SecretsOfArgs(c.SCArgs)...)
}

// APIBasicAuth returns the credentials SC's API wants (--api-basic-auth,
// SAUCE_API_BASIC_AUTH, or api-basic-auth in its config file), from its
// variables, arguments and config file's options, ranked as SC ranks them.
func APIBasicAuth(env, args []string, file map[string]string) (user, pass string, ok bool) {
	v := file["api-basic-auth"]
	for _, kv := range env {
		if val, found := strings.CutPrefix(kv, "SAUCE_API_BASIC_AUTH="); found {
			v = val
		}
	}
	parsed, _ := parseSCArgs(args)
	for _, a := range parsed {
		if a.Opt.Long == "api-basic-auth" {
			v = a.Value
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

// secrets returns what must be masked in the value of option o: per its
// kind, or, for an option the table does not know, when its name says it
// holds a secret.
func (o scOption) secrets(known bool, value string) []string {
	if value == "" {
		return nil
	}
	kind := o.Secret
	if upper := strings.ToUpper(o.Long); !known && value != "true" && value != "false" && (strings.Contains(upper, "PASSWORD") ||
		strings.Contains(upper, "TOKEN") || strings.Contains(upper, "SECRET") || strings.Contains(upper, "AUTH") || strings.HasSuffix(upper, "KEY")) {
		kind = secretValue
	}
	switch kind {
	case secretValue:
		out := []string{value}
		// user:pass lists (auth, api-basic-auth) and Name: value headers:
		// the part after the first ':' alone is secret too.
		for _, item := range strings.Split(value, ",") {
			userinfo, _, _ := strings.Cut(item, "@")
			if _, pass, ok := strings.Cut(userinfo, ":"); ok && strings.TrimSpace(pass) != "" {
				out = append(out, userinfo, strings.TrimSpace(pass))
				out = append(out, urlForms(pass)...)
			}
		}
		return out
	case secretURL:
		return ProxyPassword(value)
	}
	return nil
}

// SecretsOfFile returns what must be masked of a config file's options.
func SecretsOfFile(opts map[string]string) []string {
	var out []string
	for k, v := range opts {
		out = append(out, SecretsOfOption(k, v)...)
	}
	return out
}
