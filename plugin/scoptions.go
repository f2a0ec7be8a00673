package plugin

import (
	"fmt"
	"strings"
)

// scOption is one option of SC5's `sc run`, from its CLI reference: its
// long and short names, its variable (SAUCE_<NAME>; SC5 ranks flags over
// variables over the config file), whether it takes a value, what of its
// value is secret, and the setting that sets it when the plugin owns it.
// This one table is what validation, masking, the spec builders (which
// hand secret options to SC off its command line) and the docs read.
type scOption struct {
	Long, Short string
	// Value is true for an option that takes a value; false for a boolean.
	Value bool
	// Secret says what of the value must never be shown.
	Secret secretKind
	// Setting is the plugin's setting that sets the option ("" when the
	// plugin leaves it to the user; "-" for the plugin's own metadata).
	Setting string
}

// secretKind is what of an option's value is secret.
type secretKind int

const (
	notSecret secretKind = iota
	// secretValue: the whole value, and the secret part of each user:pass
	// item (--auth user:pass@host:port,…, --api-basic-auth user:pass,
	// --header "Name: value").
	secretValue
	// secretURL: the user:pass of a URL (a proxy's, a PAC file's).
	secretURL
)

// Env is the option's SC5 variable.
func (o scOption) Env() string {
	return "SAUCE_" + strings.ToUpper(strings.ReplaceAll(o.Long, "-", "_"))
}

// Owned reports whether the plugin sets the option itself.
func (o scOption) Owned() bool { return o.Setting != "" }

// scOptions are SC5's `sc run` options (docs.saucelabs.com, the sc run CLI
// reference, research: sauce-connect.md 1.3). An option missing here is
// passed on to SC as given, unmasked unless its name says secret.
var scOptions = []scOption{
	{Long: "username", Short: "u", Value: true, Setting: "username"},
	{Long: "access-key", Short: "k", Value: true, Secret: secretValue, Setting: "access_key"},
	{Long: "region", Short: "r", Value: true, Setting: "region"},
	{Long: "tunnel-name", Short: "i", Value: true, Setting: "tunnel_name"},
	{Long: "config-file", Short: "c", Value: true, Setting: "config_file"},
	{Long: "rest-url", Value: true, Secret: secretURL},
	{Long: "metadata", Short: "M", Value: true, Setting: "-"},
	{Long: "shared", Short: "s", Value: true, Setting: "shared"},
	{Long: "tunnel-pool", Short: "t", Setting: "tunnel_pool"},
	{Long: "deny-domains", Short: "F", Value: true, Setting: "deny_domains"},
	{Long: "direct-domains", Short: "D", Value: true, Setting: "direct_domains"},
	{Long: "tunnel-domains", Short: "T", Value: true, Setting: "tunnel_domains"},
	{Long: "tls-passthrough-domains", Short: "B", Value: true, Setting: "tls_passthrough_domains"},
	{Long: "tls-resign-domains", Short: "b", Value: true},
	{Long: "tunnel-connections", Value: true},
	{Long: "tunnel-max-concurrent-streams", Value: true},
	{Long: "auth", Short: "a", Value: true, Secret: secretValue},
	{Long: "header", Short: "H", Value: true, Secret: secretValue},
	{Long: "pac", Short: "p", Value: true, Secret: secretURL},
	{Long: "proxy", Short: "x", Value: true, Secret: secretURL, Setting: "proxy"},
	{Long: "proxy-sauce", Value: true, Secret: secretURL, Setting: "proxy_sauce"},
	{Long: "proxy-localhost", Value: true, Setting: "proxy_localhost"},
	{Long: "proxy-sauce-enable-kerberos-auth"},
	{Long: "debug-address", Value: true},
	{Long: "dns-server", Short: "n", Value: true},
	{Long: "dns-round-robin"},
	{Long: "dns-timeout", Value: true},
	{Long: "cacert-file", Value: true},
	{Long: "http-dial-attempts", Value: true},
	{Long: "http-dial-backoff", Value: true},
	{Long: "http-dial-timeout", Value: true},
	{Long: "http-idle-conn-timeout", Value: true},
	{Long: "http-response-header-timeout", Value: true},
	{Long: "http-tls-handshake-timeout", Value: true},
	{Long: "http-tls-keylog-file", Value: true},
	{Long: "api-address", Value: true, Setting: "api_port"},
	{Long: "api-basic-auth", Value: true, Secret: secretValue},
	{Long: "api-idle-timeout", Value: true},
	{Long: "log-file", Value: true},
	{Long: "log-format", Value: true},
	{Long: "log-level", Value: true, Setting: "log_level"},
	{Long: "log-http", Value: true},
}

// lookupOption finds an option by its long name, or by its short one.
func lookupOption(name string, short bool) (scOption, bool) {
	for _, o := range scOptions {
		if !short && o.Long == name || short && o.Short != "" && o.Short == name {
			return o, true
		}
	}
	return scOption{}, false
}

// optionOfEnv is the option a SAUCE_* variable sets, and whether SC5's
// reference lists it; ok is false for any other variable.
func optionOfEnv(name string) (o scOption, known, ok bool) {
	long, ok := strings.CutPrefix(name, "SAUCE_")
	if !ok {
		return scOption{}, false, false
	}
	o, known = optionNamed(strings.ReplaceAll(strings.ToLower(long), "_", "-"))
	return o, known, true
}

// optionNamed is the option of that long name: the table's, or, for one
// SC5's reference does not list (known false), one that takes a value.
func optionNamed(long string) (o scOption, known bool) {
	if o, known := lookupOption(long, false); known {
		return o, true
	}
	return scOption{Long: long, Value: true}, false
}

// scArg is one option of SC's command line as SC's parser reads it
// (pflag: --name value, --name=value, -n value, -nvalue, -n=value, bundled
// booleans -ab), with the tokens it spans.
type scArg struct {
	// Opt is the option; its Long is the name as written when SC5's
	// reference does not list it (Known false).
	Opt   scOption
	Known bool
	// Value is the option's value ("true" for a boolean given alone).
	Value string
	// Written is its name as given (-i, --tunnel-name), never its value.
	Written string
	// First and Last are the indexes of its first and last token.
	First, Last int
}

// parseSCArgs reads SC's command line (after `run`) as pflag does. A token
// that is no option is kept as itself; an option SC5's reference does not
// list is taken as given, its value only when attached with '='.
func parseSCArgs(args []string) ([]scArg, error) {
	var out []scArg
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return out, nil
		case strings.HasPrefix(a, "--"):
			name, val, hasVal := strings.Cut(a[2:], "=")
			o, known := lookupOption(name, false)
			if !known {
				o = scOption{Long: name, Value: hasVal}
			}
			arg := scArg{Opt: o, Known: known, Value: val, Written: "--" + name, First: i, Last: i}
			switch {
			case hasVal:
			case !o.Value:
				arg.Value = "true"
			case i+1 < len(args):
				i++
				arg.Value, arg.Last = args[i], i
			default:
				return out, fmt.Errorf("%s needs a value", a)
			}
			out = append(out, arg)
		case strings.HasPrefix(a, "-") && len(a) > 1:
			parsed, next, err := parseShort(args, i)
			if err != nil {
				return out, err
			}
			out, i = append(out, parsed...), next
		}
	}
	return out, nil
}

// parseShort reads the bundle of short options at args[i]: booleans until
// one that takes a value, which takes the rest of the token (after an
// optional '=') or the next token. It returns the index of its last token.
func parseShort(args []string, i int) ([]scArg, int, error) {
	var out []scArg
	rest := args[i][1:]
	for rest != "" {
		name := rest[:1]
		rest = rest[1:]
		o, known := lookupOption(name, true)
		if !known {
			// Unknown: SC refuses it; keep the rest of the token with it.
			return append(out, scArg{Opt: scOption{Long: name, Short: name, Value: true}, Value: strings.TrimPrefix(rest, "="), Written: "-" + name, First: i, Last: i}), i, nil
		}
		arg := scArg{Opt: o, Known: true, Value: "true", Written: "-" + name, First: i, Last: i}
		if o.Value {
			switch {
			case rest != "":
				arg.Value, rest = strings.TrimPrefix(rest, "="), ""
			case i+1 < len(args):
				arg.Value, arg.Last = args[i+1], i+1
			default:
				return out, i, fmt.Errorf("-%s needs a value", name)
			}
		}
		out = append(out, arg)
		if arg.Last > i {
			return out, arg.Last, nil
		}
	}
	return out, i, nil
}
