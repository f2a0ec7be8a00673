package kubernetes

import (
	"strings"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
)

// kubeName turns s into a name Kubernetes takes for pods, secrets and
// services alike (a DNS-1035 label): lowercase letters, digits and '-',
// starting with a letter, at most 63 characters (longer ones end in a hash).
func kubeName(s string) string {
	out := strings.Trim(plugin.Collapse(strings.ToLower(s), func(r rune) bool { return r >= 'a' && r <= 'z' || r >= '0' && r <= '9' }), "-")
	if out == "" || out[0] < 'a' || out[0] > 'z' {
		out = "sc-" + out
	}
	return plugin.Shorten(out, s, 63)
}

// labelValue fits s into a Kubernetes label value (at most 63 characters).
func labelValue(s string) string { return plugin.Shorten(s, s, 63) }
