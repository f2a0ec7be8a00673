package engine

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/moby/moby/api/pkg/authconfig"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/client"
	"github.com/moby/moby/client/pkg/jsonmessage"
)

// RegistryAuth is the login for a private registry or mirror.
type RegistryAuth struct {
	Username string
	Password string
}

// ImageExists reports whether the engine holds the image locally.
func (e *Engine) ImageExists(ctx context.Context, ref string) (bool, error) {
	_, err := e.api.ImageInspect(ctx, ref)
	return exists(err, "inspect image "+ref)
}

// ImageSize returns the size of a local image in bytes.
func (e *Engine) ImageSize(ctx context.Context, ref string) (int64, error) {
	res, err := e.api.ImageInspect(ctx, ref)
	if err != nil {
		return 0, fmt.Errorf("inspect image %s: %w", ref, err)
	}
	return res.Size, nil
}

// PullImage pulls ref and prints progress to w as plain lines. Credentials,
// when given, travel only in the registry auth header.
func (e *Engine) PullImage(ctx context.Context, ref string, auth *RegistryAuth, w io.Writer) error {
	opts := client.ImagePullOptions{}
	if auth != nil {
		enc, err := authconfig.Encode(registry.AuthConfig{Username: auth.Username, Password: auth.Password})
		if err != nil {
			return fmt.Errorf("encode registry credentials: %w", err)
		}
		opts.RegistryAuth = enc
	}
	rc, err := e.api.ImagePull(ctx, ref, opts)
	if err != nil {
		return fmt.Errorf("pull image %s: %w", ref, err)
	}
	defer rc.Close()
	if err := jsonmessage.DisplayJSONMessagesStream(rc, w, 0, false, nil); err != nil {
		return fmt.Errorf("pull image %s: %w", ref, err)
	}
	return nil
}

// BuildImage builds an image from a Dockerfile and files in dir with the
// engine's classic builder, which needs no registry for FROM scratch. It is
// used to build the stand-in Sauce Connect and the plugin image offline.
func (e *Engine) BuildImage(ctx context.Context, dir, dockerfile, tag string, labels map[string]string, w io.Writer) error {
	buf, err := tarDir(dir)
	if err != nil {
		return fmt.Errorf("pack build context %s: %w", dir, err)
	}
	res, err := e.api.ImageBuild(ctx, buf, client.ImageBuildOptions{
		Tags: []string{tag}, Dockerfile: dockerfile, Labels: labels, Remove: true, ForceRemove: true,
	})
	if err != nil {
		return fmt.Errorf("build image %s: %w", tag, err)
	}
	defer res.Body.Close()
	if err := jsonmessage.DisplayJSONMessagesStream(res.Body, w, 0, false, nil); err != nil {
		return fmt.Errorf("build image %s: %w", tag, err)
	}
	return nil
}

// RemoveImage removes an image by reference; not-found is success.
func (e *Engine) RemoveImage(ctx context.Context, ref string) error {
	_, err := e.api.ImageRemove(ctx, ref, client.ImageRemoveOptions{Force: true, PruneChildren: true})
	if err != nil && !IsNotFound(err) {
		return fmt.Errorf("remove image %s: %w", ref, err)
	}
	return nil
}

func tarDir(dir string) (io.Reader, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		link := ""
		if fi.Mode()&os.ModeSymlink != 0 {
			if link, err = os.Readlink(path); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if err := tw.WriteHeader(hdr); err != nil || link != "" {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return &buf, nil
}
