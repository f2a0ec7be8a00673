package docker

import (
	"context"
	"errors"
	"fmt"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

// sauceTags is where Sauce's Docker page points for the SC image's tags.
const sauceTags = "https://hub.docker.com/r/saucelabs/sauce-connect/tags"

// ensureImage makes sure the SC image is on the engine, per the pull
// setting, and returns what the start reads of it. A pull counts against
// the ready_timeout ctx carries: a registry that stalls mid-layer must not
// hang the step.
func (b *backend) ensureImage(ctx context.Context) (engine.Image, error) {
	img := b.cfg.Image
	if b.cfg.Pull != plugin.PullAlways {
		found, err := b.eng.InspectImage(ctx, img)
		if !engine.IsNotFound(err) {
			return found, err
		}
		if b.cfg.Pull == plugin.PullNever {
			return found, fmt.Errorf("image %s is not on the docker engine and pull is never; load the image first, or set pull to if-not-exists", img)
		}
	}
	began := b.s.Opt.Now()
	if err := b.pull(ctx); err != nil {
		if errors.Is(context.Cause(ctx), plugin.ErrReadyTimeout) {
			return engine.Image{}, &plugin.TimeoutError{Awaited: "the pull of image " + img + " (check the registry, or raise ready_timeout for a slow one)", After: b.s.Opt.Now().Sub(began), Last: err.Error()}
		}
		return engine.Image{}, err
	}
	return b.eng.InspectImage(ctx, img)
}

// pull pulls SC's image, with the registry login when one is set.
func (b *backend) pull(ctx context.Context) error {
	img := b.cfg.Image
	b.log.WithField("image", img).Info("pulling image")
	// Engines report a refused registry login as an internal error (20.10:
	// HTTP 500), so the hint names everything a failed pull may need.
	var login plugin.RegistryAuth
	if a := b.cfg.RegistryAuth; a != nil {
		login = *a
	}
	if err := b.eng.PullImage(ctx, img, login.Username, login.Password, b.s.Opt.Out); err != nil {
		if engine.IsNotFound(err) {
			return fmt.Errorf("%w: the registry has no image %s (no such tag or digest); set image to a published tag (Sauce's are listed at %s) or a digest", err, img, sauceTags)
		}
		return fmt.Errorf("%w; check the image name and, for a private registry or mirror, registry_username and registry_password", err)
	}
	return nil
}
