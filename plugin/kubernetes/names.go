package kubernetes

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
)

// kubeName turns s into a name Kubernetes takes for pods, secrets and
// services alike (a DNS-1035 label): lowercase letters, digits and '-',
// starting with a letter, at most 63 characters. A name that had to change
// ends in a hash of the whole, so that names differing only in case or
// punctuation (Web_E2E, web-e2e) stay apart; so does a longer one.
func kubeName(s string) string {
	out := strings.Trim(plugin.Collapse(strings.ToLower(s), func(r rune) bool { return r >= 'a' && r <= 'z' || r >= '0' && r <= '9' }), "-")
	if out == "" || out[0] < 'a' || out[0] > 'z' {
		out = "sc-" + out
	}
	if out != s {
		sum := sha256.Sum256([]byte(s))
		out = strings.TrimRight(plugin.Shorten(out, s, 63-9), "-") + "-" + hex.EncodeToString(sum[:])[:8]
	}
	return plugin.Shorten(out, s, 63)
}

// labelValue fits s into a Kubernetes label value (at most 63 characters).
func labelValue(s string) string { return plugin.Shorten(s, s, 63) }
