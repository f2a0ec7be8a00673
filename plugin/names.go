package plugin

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// maxTunnelName bounds derived names; longer ones end in a hash of the whole.
const maxTunnelName = 80

// Collapse keeps the runes keep accepts and turns every run of others into
// one '-'.
func Collapse(s string, keep func(rune) bool) string {
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

// Shorten returns s when it fits in max bytes, else a prefix of it and a
// hash of whole, so that distinct inputs stay distinct.
func Shorten(s, whole string, max int) string {
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
	out := Collapse(s, func(r rune) bool {
		return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_'
	})
	return Shorten(strings.Trim(out, "-._"), s, max)
}
