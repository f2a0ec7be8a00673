package plugin

import (
	"bytes"
	"io"
	"slices"
	"sort"
	"sync"
)

// maskText is what a secret is replaced with.
const maskText = "***"

// maxPending bounds how much of an unfinished line a MaskWriter holds back.
const maxPending = 64 << 10

// Masker knows the secrets that must never be printed. Secrets can be
// added while writers are in use: a stop step learns the tunnel's secrets
// from its container before it prints anything of SC's.
type Masker struct {
	mu      sync.RWMutex
	secrets [][]byte // longest first, so a secret containing another wins
	longest int
}

// NewMasker returns a Masker for the non-empty secrets.
func NewMasker(secrets ...string) *Masker {
	m := &Masker{}
	m.Add(secrets...)
	return m
}

// Add makes the non-empty secrets masked from now on.
func (m *Masker) Add(secrets ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range secrets {
		if s != "" && !slices.ContainsFunc(m.secrets, func(b []byte) bool { return string(b) == s }) {
			m.secrets = append(m.secrets, []byte(s))
			m.longest = max(m.longest, len(s))
		}
	}
	sort.Slice(m.secrets, func(i, j int) bool { return len(m.secrets[i]) > len(m.secrets[j]) })
}

// String masks the secrets in s.
func (m *Masker) String(s string) string { return string(m.bytes([]byte(s))) }

func (m *Masker) bytes(p []byte) []byte {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, s := range m.secrets {
		p = bytes.ReplaceAll(p, s, []byte(maskText))
	}
	return p
}

// Writer wraps w so that everything written through it is masked. Output is
// passed on a line at a time, so a secret split across writes is still
// caught; call Flush to pass on an unfinished last line.
func (m *Masker) Writer(w io.Writer) *MaskWriter {
	return &MaskWriter{m: m, w: w}
}

// MaskWriter is a masking io.Writer, safe for concurrent use.
type MaskWriter struct {
	mu  sync.Mutex
	m   *Masker
	w   io.Writer
	buf []byte
}

// Write buffers p and passes on every complete line, masked.
func (mw *MaskWriter) Write(p []byte) (int, error) {
	mw.mu.Lock()
	defer mw.mu.Unlock()
	start := len(mw.buf)
	mw.buf = append(mw.buf, p...)
	cut := 0
	// Only the new bytes can hold a newline the buffer did not have.
	if i := bytes.LastIndexByte(p, '\n'); i >= 0 {
		cut = start + i + 1
	}
	if cut == 0 && len(mw.buf) > maxPending {
		cut = len(mw.buf) - mw.m.longest + 1
	}
	mw.m.mu.RLock()
	cut = mw.settle(cut)
	mw.m.mu.RUnlock()
	if cut > 0 {
		if _, err := mw.w.Write(mw.m.bytes(mw.buf[:cut])); err != nil {
			return 0, err
		}
		mw.buf = append(mw.buf[:0], mw.buf[cut:]...)
	}
	return len(p), nil
}

// settle moves cut back until it splits no secret: neither one complete in
// the buffer (safeCut) nor one with a line break whose rest is still to
// be written (holdBack). Each step only moves it back, so it ends; moving
// it back for one secret can land inside another, so both are asked again
// until neither moves it. The caller holds the masker's read lock.
func (mw *MaskWriter) settle(cut int) int {
	for cut > 0 {
		next := mw.holdBack(mw.safeCut(cut))
		if next == cut {
			break
		}
		cut = next
	}
	return max(cut, 0)
}

// safeCut moves cut back to the start of any secret that straddles it.
// The caller holds the masker's read lock.
func (mw *MaskWriter) safeCut(cut int) int {
	for _, s := range mw.m.secrets {
		from := max(0, cut-len(s)+1)
		if i := bytes.Index(mw.buf[from:min(len(mw.buf), cut+len(s)-1)], s); i >= 0 && from+i < cut {
			cut = from + i
		}
	}
	return cut
}

// holdBack moves cut back to the start of a secret with a line break in it
// that begins before cut and is not complete in the buffer yet: the rest
// of it is still to be written. The caller holds the masker's read lock.
func (mw *MaskWriter) holdBack(cut int) int {
	best := cut
	for _, s := range mw.m.secrets {
		if bytes.IndexByte(s, '\n') < 0 {
			continue
		}
		for k := max(0, cut-len(s)+1); k < best; k++ {
			if tail := mw.buf[k:]; len(tail) < len(s) && bytes.HasPrefix(s, tail) {
				best = k
				break
			}
		}
	}
	return best
}

// Flush passes on what is buffered, masked.
func (mw *MaskWriter) Flush() error {
	mw.mu.Lock()
	defer mw.mu.Unlock()
	if len(mw.buf) == 0 {
		return nil
	}
	_, err := mw.w.Write(mw.m.bytes(mw.buf))
	mw.buf = mw.buf[:0]
	return err
}
