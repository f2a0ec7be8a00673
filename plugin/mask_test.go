package plugin

import (
	"bytes"
	"strings"
	"testing"
)

func TestMaskWriterSplitAcrossWrites(t *testing.T) {
	var out bytes.Buffer
	w := NewMasker("s3cr3t-KEY").Writer(&out)
	for _, chunk := range []string{"key is s3c", "r3t", "-K", "EY and again s3cr3t-KEY\nnext ", "line s3cr3t", "-KEY"} {
		if _, err := w.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	want := "key is *** and again ***\nnext line ***"
	if out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}

func TestMaskWriterLongLineWithoutNewline(t *testing.T) {
	var out bytes.Buffer
	secret := "0123456789abcdef"
	w := NewMasker(secret).Writer(&out)
	line := strings.Repeat("x", maxPending-5) + secret + strings.Repeat("y", 100)
	for i := 0; i < len(line); i += 7 {
		_, _ = w.Write([]byte(line[i:min(i+7, len(line))]))
	}
	_ = w.Flush()
	if strings.Contains(out.String(), secret) || !strings.Contains(out.String(), maskText) {
		t.Errorf("secret not masked in a long line")
	}
	if got, want := len(out.String()), len(line)-len(secret)+len(maskText); got != want {
		t.Errorf("output length %d, want %d", got, want)
	}
}

func TestMaskerLongestFirstAndEmpty(t *testing.T) {
	m := NewMasker("", "abc", "abcdef")
	if got := m.String("abcdef abc"); got != "*** ***" {
		t.Errorf("got %q", got)
	}
}
