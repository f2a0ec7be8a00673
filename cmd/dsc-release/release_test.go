package main

import (
	"archive/tar"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/drone-sauce-connect/drone-sauce-connect/internal/testenv"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

// ELF machine numbers of the released architectures.
var elfMachine = map[string]uint16{"amd64": 62, "arm64": 183}

// buildRelease cross-builds the plugin for every platform as make release
// does, stamped with version and revision.
func buildRelease(t *testing.T, r Release) {
	t.Helper()
	for _, p := range Platforms {
		out := filepath.Join(r.Bin, p.OS, p.Architecture, "bin", "drone-sauce-connect")
		ld := fmt.Sprintf("-s -w -X main.version=%s -X main.commit=%s -X main.date=%s", r.Version, r.Revision, r.Created.Format(time.RFC3339))
		cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags="+ld, "-o", out, "./cmd/drone-sauce-connect")
		cmd.Dir = testenv.Root()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", p.Architecture, err, b)
		}
	}
}

// TestRelease assembles the release from fresh builds: the same inputs give
// the same digests, every platform's image holds a binary built for it,
// the labels say what was built, and the amd64 image, pushed to a registry
// and pulled by the real engine, runs as the plugin with its watchdog.
func TestRelease(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin for every platform")
	}
	r := Release{Version: "9.9.9-test", Revision: "0123abcd", Created: time.Date(2026, 11, 28, 9, 30, 0, 0, time.UTC), Bin: t.TempDir()}
	buildRelease(t, r)
	idx, err := r.Index()
	if err != nil {
		t.Fatal(err)
	}
	again, err := r.Index()
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := idx.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Errorf("two assemblies of the same build differ: %s, %s", d1, d2)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"source", "version", "revision", "licenses"} {
		if m.Annotations["org.opencontainers.image."+k] == "" {
			t.Errorf("the index lacks the %s annotation: %v", k, m.Annotations)
		}
	}
	if got := m.Annotations["org.opencontainers.image.licenses"]; got != License {
		t.Errorf("the index says licence %q, want %q", got, License)
	}
	if len(m.Manifests) != len(Platforms) {
		t.Fatalf("%d manifests, want %d", len(m.Manifests), len(Platforms))
	}
	for _, d := range m.Manifests {
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		checkImage(t, img, d.Platform)
	}

	// Through a registry and the real engine, as users get it.
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	ref := strings.TrimPrefix(srv.URL, "http://") + "/" + Image + ":" + r.Version
	if err := Push(idx, ref, true); err != nil {
		t.Fatal(err)
	}
	runPulled(t, ref, r)
}

// checkImage requires the image's platform, labels, entrypoint, binary
// architecture and post-step symlink.
func checkImage(t *testing.T, img v1.Image, p *v1.Platform) {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != p.OS || cf.Architecture != p.Architecture || cf.Variant != p.Variant {
		t.Errorf("%s: the config says %s/%s/%s", p.Architecture, cf.OS, cf.Architecture, cf.Variant)
	}
	if cf.Config.Labels["org.opencontainers.image.version"] != "9.9.9-test" || cf.Config.Labels["org.opencontainers.image.revision"] != "0123abcd" {
		t.Errorf("%s: labels %v", p.Architecture, cf.Config.Labels)
	}
	if strings.Join(cf.Config.Entrypoint, " ") != "/bin/drone-sauce-connect" {
		t.Errorf("%s: entrypoint %v", p.Architecture, cf.Config.Entrypoint)
	}
	size, err := imageSize(img)
	if err != nil || size > 15e6 {
		t.Errorf("%s: %d bytes (%v), the limit is 15 MB", p.Architecture, size, err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("%s: %d layers, %v", p.Architecture, len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var machine uint16
	var post string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch h.Name {
		case "bin/drone-sauce-connect":
			head := make([]byte, 20)
			if _, err := io.ReadFull(tr, head); err != nil || string(head[:4]) != "\x7fELF" {
				t.Fatalf("%s: the binary is no ELF file (%v)", p.Architecture, err)
			}
			machine = binary.LittleEndian.Uint16(head[18:20])
		case "bin/drone-sauce-connect-post":
			post = h.Linkname
		}
	}
	if machine != elfMachine[p.Architecture] {
		t.Errorf("%s: the binary is built for ELF machine %d, want %d", p.Architecture, machine, elfMachine[p.Architecture])
	}
	if post != "drone-sauce-connect" {
		t.Errorf("%s: the post-step name links to %q", p.Architecture, post)
	}
}

// runPulled pulls ref through the engine (which picks linux/amd64 here),
// checks the stamped version, and runs a tunnel with it as a Drone step:
// the watchdog must come from the pulled image, which holds the plugin.
func runPulled(t *testing.T, ref string, r Release) {
	t.Helper()
	eng := testenv.Engine(t)
	ctx := context.Background()
	if err := eng.PullImage(ctx, ref, "", "", io.Discard); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testenv.RemoveImage(ref) })
	// Not auto-removed: it ends at once, and its exit and log are read after.
	ran, err := testenv.RunContainer(ctx, eng, engine.ContainerSpec{Name: "release-" + testenv.Random(6), Image: ref, Cmd: []string{"--version"}}, time.Minute, false)
	want := "drone-sauce-connect 9.9.9-test (commit 0123abcd, built 2026-11-28T09:30:00Z)"
	if err != nil || !strings.Contains(ran.Logs, want) {
		t.Fatalf("--version: %v\n%s\nwant %s", err, ran.Logs, want)
	}

	standin := "dsc-standin:release-" + testenv.Random(6)
	rm, err := testenv.StandinImage(standin)
	if err != nil {
		t.Fatal(err)
	}
	defer rm()
	tunnel := "release-" + testenv.Random(8)
	env := []engine.EnvVar{{Name: "DRONE", Value: "true"}, {Name: "PLUGIN_USERNAME", Value: "alice"}, {Name: "PLUGIN_ACCESS_KEY", Value: "k-release"},
		{Name: "PLUGIN_REGION", Value: "us-west"}, {Name: "PLUGIN_IMAGE", Value: standin}, {Name: "PLUGIN_PULL", Value: "never"},
		{Name: "PLUGIN_TUNNEL_NAME", Value: tunnel}, {Name: "PLUGIN_API_HOST_PORT", Value: "0"}, {Name: "PLUGIN_DEBUG", Value: "true"}}
	defer testenv.AssertNoTunnel(t, eng, tunnel)
	start, err := testenv.RunContainer(ctx, eng, engine.ContainerSpec{Name: tunnel + "-start", Image: ref, Env: env, Mounts: []engine.Mount{testenv.Socket}, AutoRemove: true}, 2*time.Minute, false)
	if err != nil || start.ExitCode != 0 || !strings.Contains(start.Logs, "is up in region") {
		t.Fatalf("start from the released image: %v, exit %d\n%s", err, start.ExitCode, start.Logs)
	}
	if strings.Contains(start.Logs, "no watchdog") || strings.Contains(start.Logs, "watchdog exited") {
		t.Errorf("the watchdog did not run from the released image:\n%s", start.Logs)
	}
	dogs, err := eng.ListContainers(ctx, map[string]string{plugin.LabelTunnel: tunnel, plugin.LabelRole: plugin.RoleWatchdog})
	if err != nil || len(dogs) != 1 || dogs[0].State != "running" {
		t.Errorf("watchdogs: %+v, %v", dogs, err)
	}
	stop, err := testenv.RunContainer(ctx, eng, engine.ContainerSpec{Name: tunnel + "-stop", Image: ref, Env: append(env, engine.EnvVar{Name: "PLUGIN_ACTION", Value: "stop"}),
		Mounts: []engine.Mount{testenv.Socket}, AutoRemove: true}, 2*time.Minute, false)
	if err != nil || stop.ExitCode != 0 {
		t.Errorf("stop: %v, exit %d\n%s", err, stop.ExitCode, stop.Logs)
	}
}

// Major is the major version every example pins: :1 for the image, @v1
// for the action.
const Major = "1"

// TestNamesAgree keeps the image name and the major tag the same in every
// place a user or the release reads them.
func TestNamesAgree(t *testing.T) {
	root := testenv.Root()
	files := []string{"README.md", "action.yml", ".drone.yml", "docker/manifest.tmpl"}
	pipelines, _ := filepath.Glob(filepath.Join(root, "testdata", "pipelines", "*.yml"))
	for _, p := range pipelines {
		rel, _ := filepath.Rel(root, p)
		files = append(files, rel)
	}
	ref := regexp.MustCompile(`([\w.-]+/)?drone-sauce-connect(/[\w.-]+)?([:@][\w.${}#%-]+)?`)
	seen := 0
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ref.FindAllStringSubmatch(string(b), -1) {
			whole, tag := m[0], m[3]
			switch {
			case !strings.HasPrefix(whole, Image) && !strings.HasPrefix(whole, "drone-sauce-connect/drone-sauce-connect"):
				continue // another path that contains the name
			case strings.HasPrefix(tag, ":") && !strings.Contains(tag, "$") && !strings.Contains(tag, "{"):
				seen++
				if tag != ":"+Major {
					t.Errorf("%s: %s pins tag %s, want :%s", f, whole, tag, Major)
				}
			case strings.HasPrefix(tag, "@"):
				seen++
				if tag != "@v"+Major {
					t.Errorf("%s: %s pins %s, want @v%s", f, whole, tag, Major)
				}
			}
		}
		// Where an image or an action is named, it is this one.
		for _, m := range regexp.MustCompile(`(?:image:\s*|docker://|uses:\s*)(\S*drone-sauce-connect\S*)`).FindAllStringSubmatch(string(b), -1) {
			if !strings.HasPrefix(strings.TrimPrefix(m[1], "docker://"), Image) {
				t.Errorf("%s: names %s, want %s", f, m[1], Image)
			}
		}
	}
	if seen < 10 {
		t.Errorf("only %d pinned references found; the check is looking in the wrong places", seen)
	}
	pipeline, _ := os.ReadFile(filepath.Join(root, ".drone.yml"))
	if !strings.Contains(string(pipeline), `git push -f "https://x-access-token:$GITHUB_TOKEN@github.com/$DRONE_REPO.git" "refs/tags/$major"`) ||
		!strings.Contains(string(pipeline), `-push "drone-sauce-connect/drone-sauce-connect:$tag"`) {
		t.Error("the release pipeline (.drone.yml) does not publish the image and move the action's major tag")
	}
}

// TestLicense: the repository's LICENSE is the licence the image labels name.
func TestLicense(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(testenv.Root(), "LICENSE"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	if License != "Apache-2.0" || !strings.Contains(text, "Apache License") || !strings.Contains(text, "Version 2.0, January 2004") ||
		!strings.Contains(text, "END OF TERMS AND CONDITIONS") {
		t.Errorf("LICENSE is not the Apache License 2.0 that the label %q names", License)
	}
	df, err := os.ReadFile(filepath.Join(testenv.Root(), "docker", "Dockerfile.linux.amd64"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(df), `org.opencontainers.image.licenses="`+License+`"`) {
		t.Errorf("docker/Dockerfile.linux.amd64 does not label the image %s", License)
	}
}
