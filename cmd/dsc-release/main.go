// Command dsc-release assembles the plugin's multi-arch image offline: one
// FROM-scratch image per platform from the binaries `make release` built,
// joined in an OCI image index with the OCI labels, written as an OCI
// layout and, with -push, pushed to a registry. It needs no Docker engine,
// no registry to build from and no emulation, and it is reproducible: the
// same binaries and the same -created time give the same digests.
//
//	go run ./cmd/dsc-release -version 1.2.3 -revision <sha> -created <RFC 3339> -out release/oci [-push ref]
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Image is where the plugin is published; its major tag is what users pin.
const Image = "drone-sauce-connect/drone-sauce-connect"

// License is the SPDX expression of the image's licence label: the
// repository's LICENSE, Apache-2.0 as the Drone plugins' convention.
const License = "Apache-2.0"

// Platforms are the platforms released, each from release/<os>/<arch>/bin.
var Platforms = []v1.Platform{
	{OS: "linux", Architecture: "amd64"},
	{OS: "linux", Architecture: "arm64", Variant: "v8"},
}

// Release is one release's metadata.
type Release struct {
	Version, Revision string
	Created           time.Time
	// Bin is the directory holding release/<os>/<arch>/bin.
	Bin string
}

// Labels are the OCI labels of every image and annotations of the index.
func (r Release) Labels() map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       "drone-sauce-connect",
		"org.opencontainers.image.description": "Opens a Sauce Connect 5 tunnel for Drone, Harness CI and GitHub Actions pipelines",
		"org.opencontainers.image.source":      "https://github.com/drone-sauce-connect/drone-sauce-connect",
		"org.opencontainers.image.version":     r.Version,
		"org.opencontainers.image.revision":    r.Revision,
		"org.opencontainers.image.created":     r.Created.UTC().Format(time.RFC3339),
		"org.opencontainers.image.licenses":    License,
	}
}

// Index assembles the multi-arch image index.
func (r Release) Index() (v1.ImageIndex, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range Platforms {
		img, err := r.image(p)
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", p.OS, p.Architecture, err)
		}
		p := p
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	return mutate.Annotations(idx, r.Labels()).(v1.ImageIndex), nil
}

// image is one platform's image: the binary and its post-step name.
func (r Release) image(p v1.Platform) (v1.Image, error) {
	bin, err := os.ReadFile(filepath.Join(r.Bin, p.OS, p.Architecture, "bin", "drone-sauce-connect"))
	if err != nil {
		return nil, err
	}
	layerTar, err := rootfs(bin, r.Created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerTar)), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{Layer: layer, History: v1.History{Created: v1.Time{Time: r.Created}, CreatedBy: "make release"}})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	cf.Created = v1.Time{Time: r.Created}
	cf.Config = v1.Config{
		Entrypoint: []string{"/bin/drone-sauce-connect"},
		Env:        []string{"GODEBUG=netdns=go"},
		Labels:     r.Labels(),
	}
	return mutate.ConfigFile(img, cf)
}

// rootfs is the image's one layer, byte for byte the same for the same
// binary and time: /bin/drone-sauce-connect and the symlink
// /bin/drone-sauce-connect-post, action.yml's post-entrypoint.
func rootfs(bin []byte, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	headers := []tar.Header{
		{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "bin/drone-sauce-connect", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bin))},
		{Name: "bin/drone-sauce-connect-post", Typeflag: tar.TypeSymlink, Linkname: "drone-sauce-connect", Mode: 0o777},
	}
	for _, h := range headers {
		h.ModTime, h.Format = mtime.UTC(), tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(bin); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Push writes the index to ref (and so every platform's image).
func Push(idx v1.ImageIndex, ref string, insecure bool) error {
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	r, err := name.ParseReference(ref, opts...)
	if err != nil {
		return err
	}
	return remote.WriteIndex(r, idx, remote.WithAuthFromKeychain(authn.DefaultKeychain))
}

func main() {
	var r Release
	var created, out, push string
	var insecure bool
	flag.StringVar(&r.Version, "version", "", "the release's version, e.g. 1.2.3")
	flag.StringVar(&r.Revision, "revision", "", "the commit it is built from")
	flag.StringVar(&created, "created", "", "the build time, RFC 3339 (the commit's time, for reproducible digests)")
	flag.StringVar(&r.Bin, "bin", "release", "the directory holding <os>/<arch>/bin/drone-sauce-connect")
	flag.StringVar(&out, "out", "release/oci", "where to write the OCI layout")
	flag.StringVar(&push, "push", "", "a reference to push the index to, e.g. "+Image+":1.2.3")
	flag.BoolVar(&insecure, "insecure", false, "push over plain HTTP (a local registry)")
	flag.Parse()
	if err := release(r, created, out, push, insecure); err != nil {
		fmt.Fprintln(os.Stderr, "dsc-release:", err)
		os.Exit(1)
	}
}

func release(r Release, created, out, push string, insecure bool) error {
	if r.Version == "" || r.Revision == "" {
		return errors.New("-version and -revision are required")
	}
	t, err := time.Parse(time.RFC3339, created)
	if err != nil {
		return fmt.Errorf("-created: %w", err)
	}
	r.Created = t
	idx, err := r.Index()
	if err != nil {
		return err
	}
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	if _, err := layout.Write(out, idx); err != nil {
		return err
	}
	digest, err := idx.Digest()
	if err != nil {
		return err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	fmt.Printf("index %s (version %s, revision %s) in %s\n", digest, r.Version, r.Revision, out)
	for _, d := range m.Manifests {
		img, err := idx.Image(d.Digest)
		if err != nil {
			return err
		}
		size, err := imageSize(img)
		if err != nil {
			return err
		}
		fmt.Printf("  %s/%s%s: %s, %.1f MB\n", d.Platform.OS, d.Platform.Architecture, variant(d.Platform), d.Digest, float64(size)/1e6)
	}
	if push != "" {
		if err := Push(idx, push, insecure); err != nil {
			return fmt.Errorf("push %s: %w", push, err)
		}
		fmt.Printf("pushed %s\n", push)
	}
	return nil
}

// imageSize is the image's unpacked size: what a host stores and what the
// 15 MB limit counts.
func imageSize(img v1.Image) (int64, error) {
	layers, err := img.Layers()
	if err != nil {
		return 0, err
	}
	var n int64
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			return 0, err
		}
		c, err := io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return 0, err
		}
		n += c
	}
	return n, nil
}

func variant(p *v1.Platform) string {
	if p.Variant == "" {
		return ""
	}
	return "/" + p.Variant
}
