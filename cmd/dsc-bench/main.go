// Command dsc-bench measures drone-sauce-connect against the real Docker
// engine and the offline stand-in Sauce Connect, and prints figures:
// readiness detection latency, plugin overhead, stop time, time to ready
// side by side with the seed's procedure (start the container, then poll
// /readyz every 2 s), binary and image size, and peak RSS; then many
// pipelines at once (sweep.go) and the Kubernetes backend on a real kubelet
// (kubernetes.go), and the engine API calls of a start and a stop
// (calls.go). It prints; it does not judge pass or fail beyond marking
// each figure against its target.
//
//	go run ./cmd/dsc-bench -n 20
//	go run ./cmd/dsc-bench -calls-of /path/to/another/build   # its engine API calls per start and stop
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/internal/testenv"
	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/engine"
)

func main() {
	flag.Parse()
	if err := bench(); err != nil {
		fmt.Fprintln(os.Stderr, "dsc-bench:", err)
		os.Exit(1)
	}
}

func bench() error {
	ctx := context.Background()
	eng, err := engine.NewEnv(ctx)
	if err != nil {
		return err
	}
	defer eng.Close()
	dir, err := os.MkdirTemp("", "dsc-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b := &bencher{eng: eng}
	if b.sauce, err = testenv.StartSauceAPI(); err != nil {
		return err
	}
	defer b.sauce.Stop()
	if b.binary, err = testenv.GoBuild("cmd/drone-sauce-connect", dir, "drone-sauce-connect"); err != nil {
		return err
	}
	tag := testenv.Random(8)
	b.standin = "dsc-standin:bench-" + tag
	rmStandin, err := testenv.StandinImage(b.standin)
	if err != nil {
		return err
	}
	defer rmStandin()
	pluginImage := "dsc-plugin:bench-" + tag
	rmPlugin, err := testenv.PluginImage(pluginImage)
	if err != nil {
		return err
	}
	defer rmPlugin()

	if *callsOf != "" {
		return b.printEngineCalls(ctx, *callsOf)
	}
	fmt.Printf("drone-sauce-connect benchmark: %d runs each, stand-in ready after %s, engine API %s\n\n", *runs, *readyDelay, eng.APIVersion)
	if err := b.printEngineCalls(ctx, b.binary); err != nil {
		return err
	}
	f, err := b.single(ctx, pluginImage)
	if err != nil {
		return err
	}
	f.print()
	ls, err := b.sweep(ctx, pluginImage)
	if err != nil {
		return err
	}
	printSweep(ls)
	return b.kubernetes(pluginImage)
}

// figures are the measures of one pipeline at a time on Docker.
type figures struct {
	detect, detectProbe, overhead, overTLS, overheadInContainer, toReady, confirmed, confirm, seed, stop sample
	peakRSS, binSize, imgSize                                                                            int64
}

// single measures one pipeline at a time, *runs times: on the host, over
// TLS, as a container, and the seed's procedure.
func (b *bencher) single(ctx context.Context, pluginImage string) (*figures, error) {
	f := &figures{}
	for i := range *runs {
		// Readiness shown only on /readyz: the probe's backoff alone.
		q, err := b.startRun(ctx, i, true)
		if err != nil {
			return nil, err
		}
		f.detectProbe = append(f.detectProbe, q.detect)
		if _, err := b.stopRun(ctx, q.tunnel); err != nil {
			return nil, err
		}
		r, err := b.startRun(ctx, i, false)
		if err != nil {
			return nil, err
		}
		f.detect, f.overhead, f.toReady = append(f.detect, r.detect), append(f.overhead, r.overhead), append(f.toReady, r.toReady)
		f.peakRSS = max(f.peakRSS, r.maxRSS)
		d, err := b.stopRun(ctx, r.tunnel)
		if err != nil {
			return nil, err
		}
		f.stop = append(f.stop, d)
		c, err := b.startRunOn(ctx, b.eng, b.confirming(), i, false)
		if err != nil {
			return nil, err
		}
		f.confirmed, f.confirm = append(f.confirmed, c.toReady), append(f.confirm, c.confirm)
		if _, err := b.stopRun(ctx, c.tunnel); err != nil {
			return nil, err
		}
		s, err := b.seedRun(ctx, i)
		if err != nil {
			return nil, err
		}
		f.seed = append(f.seed, s)
		o, err := b.containerRun(ctx, i, pluginImage)
		if err != nil {
			return nil, err
		}
		f.overheadInContainer = append(f.overheadInContainer, o)
	}
	var err error
	if f.binSize, err = fileSize(b.binary); err != nil {
		return nil, err
	}
	if f.imgSize, err = testenv.ImageSize(pluginImage); err != nil {
		return nil, err
	}
	if f.overTLS, err = b.tlsRuns(ctx); err != nil {
		return nil, err
	}
	return f, nil
}

// print shows the figures against their targets.
func (f *figures) print() {
	header()
	row("readiness detection (SC logs its ready line)", f.detect, "p50≤150, p95≤300 ms", f.detect.pct(0.5) <= 150*time.Millisecond && f.detect.pct(0.95) <= 300*time.Millisecond)
	row("readiness detection (/readyz probe alone)", f.detectProbe, "p50≤150, p95≤300 ms", f.detectProbe.pct(0.5) <= 150*time.Millisecond && f.detectProbe.pct(0.95) <= 300*time.Millisecond)
	row("plugin overhead (start → SC started)", f.overhead, "median ≤400 ms", f.overhead.pct(0.5) <= 400*time.Millisecond)
	row("plugin overhead over TCP with TLS", f.overTLS, "median ≤400 ms", f.overTLS.pct(0.5) <= 400*time.Millisecond)
	row("plugin overhead in a container (+ watchdog)", f.overheadInContainer, "median ≤400 ms", f.overheadInContainer.pct(0.5) <= 400*time.Millisecond)
	row("stop (begins → container removed)", f.stop, "≤500 ms + drain", f.stop.pct(0.5) <= 500*time.Millisecond)
	row("time to ready, plugin", f.toReady, "", true)
	row("time to ready, confirmed by Sauce (double)", f.confirmed, "", true)
	row("Sauce's confirmation itself (as logged)", f.confirm, "", true)
	row("time to ready, seed procedure (2 s curl loop)", f.seed, "", true)
	fmt.Printf("\ntime to ready, plugin / seed (medians): %.2f\n", float64(f.toReady.pct(0.5))/float64(f.seed.pct(0.5)))
	fmt.Printf("Sauce's confirmation (the REST double answering at once): %s as the plugin logs it; time to ready %s with it, %s without (medians)\n",
		ms(f.confirm.pct(0.5)), ms(f.confirmed.pct(0.5)), ms(f.toReady.pct(0.5)))
	fmt.Printf("plugin binary: %.1f MB; plugin image: %.1f MB (target ≤15 MB: %s)\n", mb(f.binSize), mb(f.imgSize), okIf(f.imgSize <= 15e6))
	fmt.Printf("plugin peak RSS during start: %.1f MB (target ≤30 MB: %s)\n", float64(f.peakRSS)/1024, okIf(f.peakRSS <= 30*1024))
}

// containerRun runs the plugin image as a Drone step on its own network,
// which also starts the watchdog before SC, and returns the time from the
// plugin container's start to SC's.
func (b *bencher) containerRun(ctx context.Context, i int, image string) (time.Duration, error) {
	net := fmt.Sprintf("bench-net-%d-%s", i, testenv.Random(6))
	if err := testenv.CreateNetwork(net); err != nil {
		return 0, err
	}
	defer b.eng.RemoveNetwork(context.WithoutCancel(ctx), net)
	tunnel := fmt.Sprintf("bench-c-%d-%s", i, testenv.Random(6))
	ran, err := testenv.RunContainer(ctx, b.eng, engine.ContainerSpec{
		Name: net + "-step", Image: image, Mounts: []engine.Mount{testenv.Socket},
		Env: []engine.EnvVar{{Name: "DRONE", Value: "true"}, {Name: "PLUGIN_USERNAME", Value: "bench"}, {Name: "PLUGIN_ACCESS_KEY", Value: "bench-key-0000"}, {Name: "PLUGIN_REGION", Value: "us-west"},
			{Name: "PLUGIN_IMAGE", Value: b.standin}, {Name: "PLUGIN_PULL", Value: "never"}, {Name: "PLUGIN_TUNNEL_NAME", Value: tunnel},
			{Name: "PLUGIN_REST_CONFIRM", Value: "false"}, {Name: "PLUGIN_REST_URL", Value: "http://127.0.0.1:9"},
			{Name: "PLUGIN_ENV", Value: fmt.Sprintf(`{"SAUCE_STANDIN_READY_DELAY":%q}`, readyDelay.String())}},
		Networks: []engine.NetworkAttachment{{Network: net, Aliases: []string{"sauce"}}},
	}, 2*time.Minute, true)
	if ran.ID != "" {
		defer b.eng.RemoveContainer(context.WithoutCancel(ctx), ran.ID)
	}
	if err != nil || ran.ExitCode != 0 {
		return 0, fmt.Errorf("plugin in a container: exit %d, %v\n%s", ran.ExitCode, err, ran.Logs)
	}
	step, err := b.eng.InspectContainer(ctx, ran.ID)
	if err != nil {
		return 0, err
	}
	sc, err := b.eng.InspectContainer(ctx, "sauce-connect-"+tunnel)
	if err != nil {
		return 0, err
	}
	d := sc.State.StartedAt.Sub(step.State.StartedAt)
	if _, err := b.stopRun(ctx, tunnel); err != nil {
		return 0, err
	}
	return d, nil
}

// seedRun follows the seed's recipe: start the container (API published),
// then poll /readyz, sleeping 2 s between tries, until it answers 200.
func (b *bencher) seedRun(ctx context.Context, i int) (time.Duration, error) {
	name := fmt.Sprintf("bench-seed-%d-%s", i, testenv.Random(6))
	began := time.Now()
	id, err := b.eng.CreateContainer(ctx, engine.ContainerSpec{
		Name: name, Image: b.standin, Cmd: []string{"run"},
		Env: []engine.EnvVar{{Name: "SAUCE_USERNAME", Value: "bench"}, {Name: "SAUCE_ACCESS_KEY", Value: "k"},
			{Name: "SAUCE_REGION", Value: "us-west"}, {Name: "SAUCE_TUNNEL_NAME", Value: name},
			{Name: "SAUCE_API_ADDRESS", Value: ":8032"}, {Name: "SAUCE_STANDIN_READY_DELAY", Value: readyDelay.String()}},
		Labels: testenv.Labels, Port: 8032, Publish: &engine.HostPort{IP: "127.0.0.1"},
	})
	if id != "" {
		defer b.eng.RemoveContainer(context.WithoutCancel(ctx), id)
	}
	if err != nil {
		return 0, err
	}
	if err := b.eng.StartContainer(ctx, id); err != nil {
		return 0, err
	}
	c, err := b.eng.InspectContainer(ctx, id)
	if err != nil {
		return 0, err
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/readyz", c.HostPorts[8032][0].Port)
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}} // like one curl per try
	for range 60 {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(began), nil
			}
		}
		time.Sleep(2 * time.Second) // the seed's `sleep 2`
	}
	return 0, errors.New("the seed procedure never saw the tunnel ready")
}

// tlsRuns measures the plugin overhead (start → SC started) against a
// second engine reached over TCP with TLS (testenv.StartDockerd), in the
// same run as the unix socket's, so the two rows compare.
func (b *bencher) tlsRuns(ctx context.Context) (sample, error) {
	d, err := testenv.StartDockerd(b.standin)
	if err != nil {
		return nil, fmt.Errorf("the TLS engine row needs a second dockerd: %w", err)
	}
	defer d.Stop()
	eng, err := engine.Connect(ctx, engine.Access{Host: d.Socket})
	if err != nil {
		return nil, err
	}
	defer eng.Close()
	via := append([]string{"DOCKER_HOST=" + d.TCP, "DOCKER_TLS_VERIFY=1", "DOCKER_CERT_PATH=" + d.ClientCerts}, unconfirmed...)
	var s sample
	for i := range *runs {
		r, err := b.startRunOn(ctx, eng, via, i, false)
		if err != nil {
			return nil, fmt.Errorf("over TLS: %w", err)
		}
		s = append(s, r.overhead)
		if _, err := b.stopRunOn(ctx, eng, via, r.tunnel); err != nil {
			return nil, fmt.Errorf("over TLS: %w", err)
		}
	}
	return s, nil
}
