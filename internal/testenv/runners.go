package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Runner returns the path of a real CI runner built by
// testdata/runner-tools/build.sh (`make runner-tools`): "drone" (drone-cli,
// whose `drone exec` runs drone-runner-docker's engine) or "act". Without
// it the test is skipped, or fails under CI=true.
func Runner(tb testing.TB, name string) string {
	tb.Helper()
	path := filepath.Join(Root(), "testdata", "runner-tools", "bin", name)
	if _, err := os.Stat(path); err != nil {
		Missing(tb, fmt.Sprintf("%s is not built (make runner-tools): %v", name, err))
	}
	return path
}

// Missing skips the test, or fails it under CI=true, where nothing the
// suite needs may be missing.
func Missing(tb testing.TB, why string) {
	tb.Helper()
	if os.Getenv("CI") == "true" {
		tb.Fatal(why)
	}
	recordSkip(why)
	tb.Skip(why)
}

// recordSkip notes a skipped tier in the file DSC_SKIPPED names, so that
// make test ends with a summary of every tier it did not run.
func recordSkip(why string) {
	path := os.Getenv("DSC_SKIPPED")
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	_, _ = f.WriteString(strings.ReplaceAll(why, "\n", " ") + "\n")
}

// BusyboxPath is where Debian's busybox-static installs its binary.
const BusyboxPath = "/bin/busybox"

// BusyboxImage builds a small job image with a shell as tag: Debian's
// static busybox, FROM scratch, its applets linked into /bin. Real runners
// run their script steps in it (drone exec's commands, act's job container).
func BusyboxImage(tag string) (func(), error) {
	dir, err := os.MkdirTemp("", "dsc-busybox-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return nil, fmt.Errorf("no static busybox (apt-get install busybox-static): %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "busybox"), bin, 0o755); err != nil {
		return nil, err
	}
	df := "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nENV PATH=/bin\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		return nil, err
	}
	return build(dir, tag)
}
