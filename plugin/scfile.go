package plugin

import (
	"fmt"
	"maps"
	"strings"

	"gopkg.in/yaml.v3"
)

// SCConfigPath is where SC5 reads its config file in the image.
const SCConfigPath = "/etc/sauce-connect/sauce-connect.yaml"

// SCFile is what SC is handed besides its variables, so that no secret is
// on its command line (readable by any local user in ps, and in docker
// inspect): the arguments of sc_args it still takes as flags, and a config
// file holding config_file's options with the secret options of sc_args
// (--auth, --api-basic-auth, --header, a proxy with credentials) merged in;
// file is nil when there is neither. A repeated option becomes a YAML
// list. The flags ranked over the file, and so do the merged options over
// the file's own; an option also in env is refused at validation. It is
// pure: the same configuration gives the same bytes.
func SCFile(c Config) (args []string, file []byte) {
	parsed, _ := parseSCArgs(c.SCArgs)
	moved := map[string][]string{}
	drop := map[int]bool{}
	for _, a := range parsed {
		if len(a.Opt.secrets(a.Known, a.Value)) == 0 || !a.Known {
			continue
		}
		moved[a.Opt.Long] = append(moved[a.Opt.Long], a.Value)
		for i := a.First; i <= a.Last; i++ {
			drop[i] = true
		}
	}
	for i, a := range c.SCArgs {
		if !drop[i] {
			args = append(args, a)
		}
	}
	if len(moved) == 0 && c.ConfigFile == "" {
		return args, nil
	}
	opts := maps.Clone(c.FileYAML)
	if opts == nil {
		opts = map[string]any{}
	}
	for name, values := range moved {
		if len(values) == 1 {
			opts[name] = values[0]
		} else {
			opts[name] = values
		}
	}
	file, _ = yaml.Marshal(opts)
	return args, file
}

// ParseSCFile reads an SC5 YAML config file's options, as text (lists
// joined by commas), for masking and for what the plugin itself must know
// of SC (its API's basic auth).
func ParseSCFile(raw []byte) (map[string]string, error) {
	_, text, err := readSCFile(raw)
	return text, err
}

// readSCFile reads an SC5 YAML config file's options as the file has them,
// and as text (optionText).
func readSCFile(raw []byte) (map[string]any, map[string]string, error) {
	var opts map[string]any
	if err := yaml.Unmarshal(raw, &opts); err != nil {
		return nil, nil, err
	}
	text := map[string]string{}
	for k, v := range opts {
		text[k] = optionText(v)
	}
	return opts, text, nil
}

// optionText is a config file value as SC's variables would carry it: a
// list joined by commas.
func optionText(v any) string {
	if list, ok := v.([]any); ok {
		parts := make([]string, len(list))
		for i, p := range list {
			parts[i] = fmt.Sprint(p)
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprint(v)
}
