package testenv

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// LiteEngine is Harness's lite-engine, the engine that runs the steps of a
// Harness Cloud or VM-pool stage, serving its API on loopback as Harness's
// manager reaches it on a VM: HTTPS with client certificates (TLS 1.3),
// here from a CA the test makes. One engine runs one stage at a time.
type LiteEngine struct {
	URL    string
	dir    string
	proc   *proc
	client *http.Client
}

// The JSON lite-engine takes (its api package, 2022): what Harness's manager
// sends for a stage and its steps.
type (
	// LiteSetup is /setup/'s body: the stage's network and variables.
	LiteSetup struct {
		Envs    map[string]string `json:"envs,omitempty"`
		Network LiteNetwork       `json:"network"`
		Secrets []string          `json:"secrets,omitempty"`
	}
	// LiteNetwork is the stage network lite-engine creates and removes.
	LiteNetwork struct {
		ID     string            `json:"id"`
		Labels map[string]string `json:"labels,omitempty"`
	}
	// LiteStep is /start_step/'s body. A Plugin step is kind Run with an
	// image, no commands and its settings as PLUGIN_* in Envs; a Run step
	// without an image runs on the VM itself; a Background step is detached.
	LiteStep struct {
		ID      string            `json:"id"`
		Name    string            `json:"name"`
		Kind    string            `json:"kind"`
		Detach  bool              `json:"detach,omitempty"`
		Envs    map[string]string `json:"environment"`
		Image   string            `json:"image,omitempty"`
		Pull    string            `json:"pull,omitempty"`
		Labels  map[string]string `json:"labels,omitempty"`
		LogKey  string            `json:"log_key"`
		Run     LiteRun           `json:"run"`
		Timeout int               `json:"timeout,omitempty"`
		// OutputVars are the variables a Run step's script exports.
		OutputVars []string `json:"output_vars,omitempty"`
	}
	// LiteRun is a Run step's script.
	LiteRun struct {
		Commands   []string `json:"commands,omitempty"`
		Entrypoint []string `json:"entrypoint,omitempty"`
	}
	// LitePolled is /poll_step/'s answer, once the step has ended.
	LitePolled struct {
		Exited   bool              `json:"exited"`
		ExitCode int               `json:"exit_code"`
		Error    string            `json:"error"`
		Outputs  map[string]string `json:"outputs"`
	}
)

// LiteShared is lite-engine's shared folder: created on the VM and mounted
// at the same path into every step container; with no log service it holds
// each step's log, a file named after the step's log key.
const LiteShared = "/tmp/engine"

// StartLiteEngine starts the lite-engine binary bin (make runner-tools) on
// a free loopback port and waits until it answers.
func StartLiteEngine(bin string) (le *LiteEngine, err error) {
	dir, err := os.MkdirTemp("", "dsc-lite-engine-")
	if err != nil {
		return nil, err
	}
	le = &LiteEngine{dir: dir}
	defer func() {
		if err != nil {
			le.Stop()
		}
	}()
	ports, err := freePorts(1)
	if err != nil {
		return le, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	if _, _, _, err := MakeCerts(dir, []string{"127.0.0.1"}); err != nil {
		return le, err
	}
	if le.client, err = liteClient(filepath.Join(dir, "client")); err != nil {
		return le, err
	}
	server := filepath.Join(dir, "server")
	le.proc, err = startLoggedEnv(dir, []string{
		"HTTPS_BIND=" + addr, "SKIP_PREPARE_SERVER=true", "DEBUG=true",
		"SERVER_CERT_FILE=" + filepath.Join(server, "cert.pem"),
		"SERVER_KEY_FILE=" + filepath.Join(server, "key.pem"),
		"CLIENT_CERT_FILE=" + filepath.Join(server, "ca.pem"), // the CA client certificates must chain to
	}, bin, "server", "--env-file", os.DevNull)
	if err != nil {
		return le, err
	}
	le.URL = "https://" + addr
	return le, le.waitUp(20 * time.Second)
}

// liteClient is Harness's side of the connection: the client certificate
// and the CA that signed the engine's.
func liteClient(dir string) (*http.Client, error) {
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		return nil, err
	}
	ca, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		Certificates: []tls.Certificate{pair}, RootCAs: pool, MinVersion: tls.VersionTLS13,
	}}}, nil
}

func (le *LiteEngine) waitUp(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		if err := exited([]*proc{le.proc}, func(string) string { return tail(le.Log(), 10) }); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := le.call(ctx, http.MethodGet, "/healthz/", nil, nil)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lite-engine did not answer within %s: %w\n%s", limit, err, tail(le.Log(), 10))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Setup is /setup/: the stage begins.
func (le *LiteEngine) Setup(ctx context.Context, s LiteSetup) error {
	return le.call(ctx, http.MethodPost, "/setup/", s, nil)
}

// StartStep is /start_step/: it returns once the step has begun.
func (le *LiteEngine) StartStep(ctx context.Context, s LiteStep) error {
	return le.call(ctx, http.MethodPost, "/start_step/", s, nil)
}

// PollStep is /poll_step/: it blocks until the step has ended.
func (le *LiteEngine) PollStep(ctx context.Context, id string) (LitePolled, error) {
	var p LitePolled
	err := le.call(ctx, http.MethodPost, "/poll_step/", map[string]string{"id": id}, &p)
	return p, err
}

// Destroy is /destroy/: the stage ends. lite-engine SIGKILLs and removes
// every container it created, then removes the stage network once,
// ignoring every error.
func (le *LiteEngine) Destroy(ctx context.Context) error {
	return le.call(ctx, http.MethodPost, "/destroy/", struct{}{}, nil)
}

func (le *LiteEngine) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, le.URL+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := le.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("lite-engine %s: %s: %s", path, resp.Status, strings.TrimSpace(string(b)))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

// StepLog is the text of a step's log, which lite-engine (with no log
// service) writes to LiteShared as JSON lines once the step has ended.
func StepLog(logKey string) (string, error) {
	b, err := os.ReadFile(filepath.Join(LiteShared, logKey))
	if err != nil {
		return "", err
	}
	var out strings.Builder
	dec := json.NewDecoder(bytes.NewReader(b))
	for {
		var line struct {
			Out string `json:"out"`
		}
		if err := dec.Decode(&line); errors.Is(err, io.EOF) {
			return out.String(), nil
		} else if err != nil {
			return out.String(), fmt.Errorf("step log %s: %w", logKey, err)
		}
		out.WriteString(line.Out)
	}
}

// Log is what lite-engine printed.
func (le *LiteEngine) Log() string {
	b, _ := os.ReadFile(filepath.Join(le.dir, "lite-engine.log"))
	return string(b)
}

// Kill SIGKILLs lite-engine, as a VM that dies or an agent killed mid-stage.
func (le *LiteEngine) Kill() {
	if le.proc != nil {
		_ = le.proc.Process.Signal(syscall.SIGKILL)
		<-le.proc.done
	}
}

// Stop ends lite-engine and removes its folder.
func (le *LiteEngine) Stop() {
	if le.proc != nil {
		le.proc.stop(5 * time.Second)
	}
	_ = os.RemoveAll(le.dir)
}
