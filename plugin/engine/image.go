package engine

import (
	"context"
	"fmt"
	"io"

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
	err := call0(ctx, e, "inspect image "+ref, 0, func(ctx context.Context) error {
		_, err := e.api.ImageInspect(ctx, ref)
		return err
	})
	return exists(err, "inspect image "+ref)
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
