package testenv

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Registry is a minimal Docker registry (API v2, read-only) on loopback
// that serves one image, the stand-in Sauce Connect, behind Basic auth. The
// engine trusts 127.0.0.0/8 as an insecure registry, so plain HTTP works.
type Registry struct {
	// Host is host:port, the image reference's prefix.
	Host               string
	Username, Password string
	srv                *http.Server
	manifest           []byte
	blobs              map[string][]byte
}

// Mediatypes of the Docker v2 schema 2 image format.
const (
	mtManifest = "application/vnd.docker.distribution.manifest.v2+json"
	mtConfig   = "application/vnd.docker.container.image.v1+json"
	mtLayer    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
)

// StartRegistry builds the stand-in binary into a one-layer image and
// serves it under any repository name and tag.
func StartRegistry(username, password string) (*Registry, error) {
	dir, err := os.MkdirTemp("", "dsc-registry-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin, err := GoBuild("testdata/sc-standin", dir, "sc")
	if err != nil {
		return nil, err
	}
	layerTar, err := tarFile(bin, "usr/bin/sc")
	if err != nil {
		return nil, err
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(layerTar)
	if err := zw.Close(); err != nil {
		return nil, err
	}
	config, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Entrypoint": []string{"/usr/bin/sc"}, "Cmd": []string{"run"}, "Labels": Labels},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{digest(layerTar)}},
	})
	r := &Registry{Username: username, Password: password, blobs: map[string][]byte{digest(config): config, digest(gz.Bytes()): gz.Bytes()}}
	r.manifest, _ = json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": mtManifest,
		"config": map[string]any{"mediaType": mtConfig, "size": len(config), "digest": digest(config)},
		"layers": []any{map[string]any{"mediaType": mtLayer, "size": gz.Len(), "digest": digest(gz.Bytes())}},
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r.Host = l.Addr().String()
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.srv.Serve(l) }()
	return r, nil
}

// Close stops the registry.
func (r *Registry) Close() { _ = r.srv.Close() }

func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if u, p, ok := req.BasicAuth(); !ok || u != r.Username || p != r.Password {
		w.Header().Set("WWW-Authenticate", `Basic realm="dsc-test"`)
		http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
		return
	}
	path := req.URL.Path
	switch {
	case path == "/v2/" || path == "/v2":
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		_, _ = w.Write([]byte("{}"))
	case strings.Contains(path, "/manifests/"):
		w.Header().Set("Content-Type", mtManifest)
		w.Header().Set("Docker-Content-Digest", digest(r.manifest))
		w.Header().Set("Content-Length", fmt.Sprint(len(r.manifest)))
		if req.Method != http.MethodHead {
			_, _ = w.Write(r.manifest)
		}
	case strings.Contains(path, "/blobs/"):
		b, ok := r.blobs[path[strings.LastIndex(path, "/")+1:]]
		if !ok {
			http.NotFound(w, req)
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		w.Header().Set("Docker-Content-Digest", digest(b))
		if req.Method != http.MethodHead {
			_, _ = w.Write(b)
		}
	default:
		http.NotFound(w, req)
	}
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// tarFile packs one executable file at name.
func tarFile(src, name string) ([]byte, error) {
	data, err := os.ReadFile(src)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []string{"usr/", "usr/bin/", "tmp/"} {
		mode := int64(0o755)
		if d == "tmp/" {
			mode = 0o1777
		}
		if err := tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: mode, ModTime: time.Unix(0, 0)}); err != nil {
			return nil, err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Name: filepath.ToSlash(name), Mode: 0o755, Size: int64(len(data)), ModTime: time.Unix(0, 0)}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(data); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
