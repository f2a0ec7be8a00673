package testenv

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Registry is an in-memory registry with the full distribution API
// (go-containerregistry's), behind Basic auth, on loopback. The engine
// trusts 127.0.0.0/8 as an insecure registry, so plain HTTP works.
type Registry struct {
	// Host is host:port, the image references' prefix.
	Host               string
	Username, Password string
	srv                *http.Server
	standin            v1.Image
	// Stall makes every download of a layer of PushFresh's own stop after
	// its first bytes and hang until the client gives up, as a registry
	// stalled mid-layer does. Layers other images share are served: an
	// engine shares one download of a layer among every pull that needs it,
	// so a stalled shared layer would stall other tests' pulls (on a new
	// machine, where no engine holds it yet).
	Stall atomic.Bool
	fresh sync.Map // digests of PushFresh's own layers
}

// stallWriter passes on the first bytes of an answer, then hangs until
// the request ends.
type stallWriter struct {
	http.ResponseWriter
	req     *http.Request
	written int
}

func (s *stallWriter) Write(b []byte) (int, error) {
	const first = 1024
	if n := min(len(b), first-s.written); n > 0 {
		if _, err := s.ResponseWriter.Write(b[:n]); err != nil {
			return 0, err
		}
		s.written += n
	}
	if s.written < first {
		return len(b), nil
	}
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
	<-s.req.Context().Done()
	return 0, s.req.Context().Err()
}

// StartRegistry starts the registry and builds the stand-in Sauce Connect
// into a one-layer image that Push serves under any name.
func StartRegistry(username, password string) (*Registry, error) {
	img, err := standinImage()
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &Registry{Host: l.Addr().String(), Username: username, Password: password, standin: img}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	r.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if u, p, ok := req.BasicAuth(); !ok || u != r.Username || p != r.Password {
			w.Header().Set("WWW-Authenticate", `Basic realm="dsc-test"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
		if _, own := r.fresh.Load(path.Base(req.URL.Path)); own && r.Stall.Load() && req.Method == http.MethodGet {
			w = &stallWriter{ResponseWriter: w, req: req}
		}
		reg.ServeHTTP(w, req)
	})}
	go func() { _ = r.srv.Serve(l) }()
	return r, nil
}

// Push stores the stand-in image as repo:tag and returns its reference.
func (r *Registry) Push(repoTag string) (string, error) {
	ref, err := name.ParseReference(r.Host+"/"+repoTag, name.Insecure)
	if err != nil {
		return "", err
	}
	return ref.String(), remote.Write(ref, r.standin, remote.WithAuth(&authn.Basic{Username: r.Username, Password: r.Password}))
}

// PushFresh is Push with a layer of its own on top, which no engine holds
// yet: a pull must download it.
func (r *Registry) PushFresh(repoTag string) (string, error) {
	ref, err := name.ParseReference(r.Host+"/"+repoTag, name.Insecure)
	if err != nil {
		return "", err
	}
	own := make([]byte, 64<<10)
	_, _ = rand.Read(own)
	layerTar, err := tarLayer(layerFile{name: "fresh", mode: 0o644, data: own})
	if err != nil {
		return "", err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerTar)), nil })
	if err != nil {
		return "", err
	}
	digest, err := layer.Digest()
	if err != nil {
		return "", err
	}
	r.fresh.Store(digest.String(), true)
	img, err := mutate.AppendLayers(r.standin, layer)
	if err != nil {
		return "", err
	}
	return ref.String(), remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: r.Username, Password: r.Password}))
}

// Digest is the manifest digest (sha256:…) the registry serves for ref.
func (r *Registry) Digest(ref string) (string, error) {
	parsed, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return "", err
	}
	desc, err := remote.Head(parsed, remote.WithAuth(&authn.Basic{Username: r.Username, Password: r.Password}))
	if err != nil {
		return "", err
	}
	return desc.Digest.String(), nil
}

// Close stops the registry.
func (r *Registry) Close() { _ = r.srv.Close() }

// standinImage is the stand-in binary at /usr/bin/sc, shaped like the SC5
// image (sc as the entrypoint, run as the command).
func standinImage() (v1.Image, error) {
	dir, err := os.MkdirTemp("", "dsc-registry-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin, err := GoBuild("testdata/sc-standin", dir, "sc")
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	layerTar, err := tarLayer(layerFile{name: "usr/", mode: 0o755}, layerFile{name: "usr/bin/", mode: 0o755}, layerFile{name: "tmp/", mode: 0o1777},
		layerFile{name: "usr/bin/sc", mode: 0o755, data: data})
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerTar)), nil })
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = "amd64", "linux"
	cf.Config = v1.Config{Entrypoint: []string{"/usr/bin/sc"}, Cmd: []string{"run"}, Labels: Labels}
	return mutate.ConfigFile(img, cf)
}

// layerFile is one entry of a layer: a directory (a name ending in '/',
// no data) or a file holding data.
type layerFile struct {
	name string
	mode int64
	data []byte
}

// tarLayer packs files into a layer, every entry dated at the epoch, so
// that the same files give the same bytes.
func tarLayer(files ...layerFile) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: time.Unix(0, 0)}
		if strings.HasSuffix(f.name, "/") {
			h.Typeflag = tar.TypeDir
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
