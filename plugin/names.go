package plugin

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// maxTunnelName bounds derived names; longer ones end in a hash of the whole.
const maxTunnelName = 80

// collapse keeps the runes keep accepts and turns every run of others into
// one '-'.
func collapse(s string, keep func(rune) bool) string {
	var b strings.Builder
	dash := false
	for _, r := range s {
		if keep(r) {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	return b.String()
}

// shorten returns s when it fits in max bytes, else a prefix of it and a
// hash of whole, so that distinct inputs stay distinct.
func shorten(s, whole string, max int) string {
	if len(s) <= max {
		return s
	}
	sum := sha256.Sum256([]byte(whole))
	return strings.TrimRight(s[:max-9], "-._") + "-" + hex.EncodeToString(sum[:])[:8]
}

// sanitizeName keeps letters, digits, '.', '_' and '-', turns every other run
// of characters into one '-', trims separators from both ends and shortens
// names over max to a prefix plus a hash: a container or tunnel name.
func sanitizeName(s string, max int) string {
	out := collapse(s, func(r rune) bool {
		return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_'
	})
	return shorten(strings.Trim(out, "-._"), s, max)
}

// kubeName turns s into a name Kubernetes takes for pods, secrets and
// services alike (a DNS-1035 label): lowercase letters, digits and '-',
// starting with a letter, at most 63 characters (longer ones end in a hash).
func kubeName(s string) string {
	out := strings.Trim(collapse(strings.ToLower(s), func(r rune) bool { return r >= 'a' && r <= 'z' || r >= '0' && r <= '9' }), "-")
	if out == "" || out[0] < 'a' || out[0] > 'z' {
		out = "sc-" + out
	}
	return shorten(out, s, 63)
}

// labelValue fits s into a Kubernetes label value (at most 63 characters).
func labelValue(s string) string { return shorten(s, s, 63) }
