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

// Image is what the plugin reads of an image the engine holds.
type Image struct {
	// User is the image's USER ("" for root).
	User string
}

// InspectImage reads an image the engine holds; a missing one is an error
// for which IsNotFound holds.
func (e *Engine) InspectImage(ctx context.Context, ref string) (Image, error) {
	var img Image
	err := call0(ctx, e, "inspect image "+ref, 0, func(ctx context.Context) error {
		res, err := e.api.ImageInspect(ctx, ref)
		if err == nil && res.Config != nil {
			img = Image{User: res.Config.User}
		}
		return err
	})
	if err != nil {
		return img, fmt.Errorf("inspect image %s: %w", ref, err)
	}
	return img, nil
}

// PullImage pulls ref and prints progress to w as plain lines. Credentials,
// when given, travel only in the registry auth header.
func (e *Engine) PullImage(ctx context.Context, ref, username, password string, w io.Writer) error {
	opts := client.ImagePullOptions{}
	if username != "" {
		enc, err := authconfig.Encode(registry.AuthConfig{Username: username, Password: password})
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
