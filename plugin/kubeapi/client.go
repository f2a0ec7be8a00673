// Package kubeapi is a small client for the few Kubernetes API calls the
// plugin's Kubernetes backend makes: pods (create, get, list, watch,
// delete, status), pod logs, secrets and services. It speaks the REST API
// directly, so the plugin image stays small (client-go's typed clientset
// would more than double it).
package kubeapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/drone-sauce-connect/drone-sauce-connect/plugin/backoff"
)

// Service-account files in a pod.
const (
	saDir       = "/var/run/secrets/kubernetes.io/serviceaccount"
	saToken     = saDir + "/token"
	saCA        = saDir + "/ca.crt"
	saNamespace = saDir + "/namespace"
)

// ErrNotInCluster means there is no service-account token or API address.
var ErrNotInCluster = errors.New("not running in a Kubernetes pod with a service account token")

// Config locates and authenticates to an API server.
type Config struct {
	// Host is the API server's URL, e.g. https://10.96.0.1:443.
	Host string
	// Token is a bearer token.
	Token string
	// CA is the PEM bundle that signs the server's certificate.
	CA []byte
	// TokenFile, when set, holds the token and is re-read as the kubelet
	// rotates it (a projected service-account token), as client-go does.
	TokenFile string
}

// inClusterConfig reads the pod's service account, as every in-cluster
// client does, and returns the config and the pod's namespace.
func inClusterConfig() (Config, string, error) {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	token, err := os.ReadFile(saToken)
	if host == "" || err != nil {
		return Config{}, "", ErrNotInCluster
	}
	if port == "" {
		port = "443"
	}
	ca, err := os.ReadFile(saCA)
	if err != nil {
		return Config{}, "", fmt.Errorf("read the cluster CA: %w", err)
	}
	ns, _ := os.ReadFile(saNamespace)
	return Config{Host: "https://" + net.JoinHostPort(host, port), Token: strings.TrimSpace(string(token)), CA: ca, TokenFile: saToken},
		strings.TrimSpace(string(ns)), nil
}

// Client calls the API server.
type Client struct {
	base      string
	http      *http.Client
	tokenFile string

	mu       sync.Mutex
	token    string
	tokenAge time.Time
}

// tokenRefresh is how often a token file is re-read; the kubelet rotates
// projected tokens well before they expire (client-go re-reads each minute).
const tokenRefresh = time.Minute

// bearer returns the token, re-reading the token file when it is due.
func (c *Client) bearer() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tokenFile != "" && time.Since(c.tokenAge) >= tokenRefresh {
		if b, err := os.ReadFile(c.tokenFile); err == nil && len(bytes.TrimSpace(b)) > 0 {
			c.token = strings.TrimSpace(string(b))
		}
		c.tokenAge = time.Now()
	}
	return c.token
}

// New returns a client for cfg.
func New(cfg Config) (*Client, error) {
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(cfg.CA) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(cfg.CA) {
			return nil, errors.New("the cluster CA is not PEM")
		}
		tlsCfg.RootCAs = pool
	}
	return &Client{
		base:      strings.TrimSuffix(cfg.Host, "/"),
		token:     cfg.Token,
		tokenFile: cfg.TokenFile,
		tokenAge:  time.Now(),
		http:      &http.Client{Transport: transport(tlsCfg, answerTimeout)},
	}, nil
}

// The API server's bounds: an API server that takes connections and never
// answers must not hang the step until the CI's own timeout. The answer's
// headers come at once for a watch and a log stream too; their bodies are
// bounded by their callers' contexts.
const (
	dialTimeout   = 10 * time.Second
	answerTimeout = 30 * time.Second
	// requestTimeout bounds a request whose answer is read whole.
	requestTimeout = 60 * time.Second
)

// transport is the API server's transport, direct (never through the
// step's HTTP proxy), with every phase before the answer bounded.
func transport(tlsCfg *tls.Config, answer time.Duration) *http.Transport {
	return &http.Transport{
		TLSClientConfig: tlsCfg, ForceAttemptHTTP2: true,
		DialContext:           (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   dialTimeout,
		ResponseHeaderTimeout: answer,
	}
}

// statusError is an error status from the API server.
type statusError struct {
	Code    int
	Reason  string
	Message string
}

func (e *statusError) Error() string { return e.Message }

// IsNotFound reports a 404.
func IsNotFound(err error) bool { return code(err) == http.StatusNotFound }

// IsForbidden reports a 403 (RBAC said no).
func IsForbidden(err error) bool { return code(err) == http.StatusForbidden }

// IsConflict reports a 409 (the object exists already, or changed).
func IsConflict(err error) bool { return code(err) == http.StatusConflict }

func code(err error) int {
	var ae *statusError
	if errors.As(err, &ae) {
		return ae.Code
	}
	return 0
}

// Do sends one request; body (when not nil) and out are JSON.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := c.send(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// Retries of a request the API server turned away: 429 (too many
// requests), or a 5xx that says when to come back, for any method (the
// server did not act on it); 502, 503 and 504 also for methods that may be
// repeated. Retry-After is honoured up to retryMaxWait.
const (
	retries      = 5
	retryMaxWait = 10 * time.Second
)

// retryFirst is the first pause between retries (a variable for tests).
var retryFirst = 200 * time.Millisecond

// send returns a response with a 2xx status, or the API's error.
func (c *Client) send(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var payload []byte
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		payload = b
	}
	var ok *http.Response
	err := backoff.Retry(ctx, backoff.Policy{First: retryFirst, Max: retryMaxWait, Tries: retries}, func(ctx context.Context) error {
		resp, err := c.once(ctx, method, path, payload)
		if err != nil {
			return backoff.Permanent(err)
		}
		if resp.StatusCode/100 == 2 {
			ok = resp
			return nil
		}
		after, again := retryAfter(method, resp)
		err = apiError(method, path, resp)
		switch {
		case !again:
			return backoff.Permanent(err)
		case after > 0:
			return backoff.After(err, min(after, retryMaxWait))
		}
		return err
	})
	return ok, err
}

// once sends the request one time.
func (c *Client) once(ctx context.Context, method, path string, payload []byte) (*http.Response, error) {
	var r io.Reader
	if payload != nil {
		r = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
		if method == http.MethodPatch {
			req.Header.Set("Content-Type", "application/merge-patch+json")
		}
	}
	if t := c.bearer(); t != "" {
		req.Header.Set("Authorization", "Bearer "+t)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	return resp, nil
}

// retryAfter says whether a refused request may be sent again, and after
// how long the server asked (0: not said).
func retryAfter(method string, resp *http.Response) (time.Duration, bool) {
	secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	after := time.Duration(max(secs, 0)) * time.Second
	said := err == nil
	switch code := resp.StatusCode; {
	case code == http.StatusTooManyRequests, code >= 500 && said:
		return after, true
	case code == http.StatusBadGateway || code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout:
		return 0, method != http.MethodPost
	}
	return 0, false
}

// apiError reads the API's error status from a refused request.
func apiError(method, path string, resp *http.Response) error {
	defer resp.Body.Close()
	var st struct {
		Reason  string `json:"reason"`
		Message string `json:"message"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &st) != nil || st.Message == "" {
		st.Message = fmt.Sprintf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return &statusError{Code: resp.StatusCode, Reason: st.Reason, Message: st.Message}
}

// objectsPath is the API path of the objects of kind (pods, secrets,
// services) in namespace ns.
func objectsPath(ns, kind string) string {
	return "/api/v1/namespaces/" + url.PathEscape(ns) + "/" + kind
}

func podsPath(ns string) string { return objectsPath(ns, "pods") }

// GetPod returns a pod.
func (c *Client) GetPod(ctx context.Context, ns, name string) (Pod, error) {
	var p Pod
	err := c.Do(ctx, http.MethodGet, PodPath(ns, name), nil, &p)
	return p, err
}

// CreatePod creates a pod.
func (c *Client) CreatePod(ctx context.Context, ns string, p Pod) (Pod, error) {
	var out Pod
	err := c.Do(ctx, http.MethodPost, podsPath(ns), p, &out)
	return out, err
}

// ListPods lists the pods matching a label selector.
func (c *Client) ListPods(ctx context.Context, ns, selector string) ([]Pod, error) {
	var l struct {
		Items []Pod `json:"items"`
	}
	err := c.Do(ctx, http.MethodGet, podsPath(ns)+"?labelSelector="+url.QueryEscape(selector), nil, &l)
	return l.Items, err
}

// AnnotatePod sets annotations on a pod (a JSON merge patch).
func (c *Client) AnnotatePod(ctx context.Context, ns, name string, annotations map[string]string) error {
	body := map[string]any{"metadata": map[string]any{"annotations": annotations}}
	return c.Do(ctx, http.MethodPatch, PodPath(ns, name), body, nil)
}

// DeletePod deletes a pod with a grace period; a missing pod is success.
func (c *Client) DeletePod(ctx context.Context, ns, name string, grace time.Duration) error {
	return ignoreNotFound(c.Do(ctx, http.MethodDelete, PodPath(ns, name), deleteOptions(&grace, ""), nil))
}

// PodLogs returns the last lines of a container's log.
func (c *Client) PodLogs(ctx context.Context, ns, name, container string, tail int) (string, error) {
	resp, err := c.send(ctx, http.MethodGet, fmt.Sprintf("%s/log?container=%s&tailLines=%d", PodPath(ns, name), url.QueryEscape(container), tail), nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return string(b), err
}

// FollowPodLogs streams a container's log from its last tail lines on,
// until the container ends or ctx does.
func (c *Client) FollowPodLogs(ctx context.Context, ns, name, container string, tail int) (io.ReadCloser, error) {
	resp, err := c.send(ctx, http.MethodGet, fmt.Sprintf("%s/log?container=%s&tailLines=%d&follow=true", PodPath(ns, name), url.QueryEscape(container), tail), nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// CreateSecret creates a secret and returns it as created (its UID).
func (c *Client) CreateSecret(ctx context.Context, ns string, s Secret) (Secret, error) {
	var out Secret
	err := c.Do(ctx, http.MethodPost, objectsPath(ns, "secrets"), s, &out)
	return out, err
}

// deleteOptions deletes with a grace period (nil: the object's own) and,
// when uid is set, only the object of that UID: another start's object of
// the same name is never deleted (409 Conflict).
func deleteOptions(grace *time.Duration, uid string) map[string]any {
	body := map[string]any{"kind": "DeleteOptions", "apiVersion": "v1"}
	if grace != nil {
		body["gracePeriodSeconds"] = int64(grace.Seconds())
	}
	if uid != "" {
		body["preconditions"] = map[string]string{"uid": uid}
	}
	return body
}

// DeleteOwn deletes the object at path (…/pods/NAME, …/secrets/NAME) if it
// is still the one of that UID; a missing one, or another of its name, is
// success.
func (c *Client) DeleteOwn(ctx context.Context, path, uid string, grace *time.Duration) error {
	err := c.Do(ctx, http.MethodDelete, path, deleteOptions(grace, uid), nil)
	if IsConflict(err) {
		return nil
	}
	return ignoreNotFound(err)
}

// PodPath is the API path of a pod.
func PodPath(ns, name string) string { return podsPath(ns) + "/" + url.PathEscape(name) }

// SecretPath is the API path of a secret.
func SecretPath(ns, name string) string {
	return objectsPath(ns, "secrets") + "/" + url.PathEscape(name)
}

// ServicePath is the API path of a service.
func ServicePath(ns, name string) string {
	return objectsPath(ns, "services") + "/" + url.PathEscape(name)
}

// GetSecret reads a secret.
func (c *Client) GetSecret(ctx context.Context, ns, name string) (Secret, error) {
	var s Secret
	err := c.Do(ctx, http.MethodGet, SecretPath(ns, name), nil, &s)
	return s, err
}

// DeleteSecret deletes a secret; a missing one is success.
func (c *Client) DeleteSecret(ctx context.Context, ns, name string) error {
	return ignoreNotFound(c.Do(ctx, http.MethodDelete, SecretPath(ns, name), nil, nil))
}

// CreateService creates a service.
func (c *Client) CreateService(ctx context.Context, ns string, s Service) (Service, error) {
	var out Service
	err := c.Do(ctx, http.MethodPost, objectsPath(ns, "services"), s, &out)
	return out, err
}

// DeleteService deletes a service; a missing one is success.
func (c *Client) DeleteService(ctx context.Context, ns, name string) error {
	return ignoreNotFound(c.Do(ctx, http.MethodDelete, ServicePath(ns, name), nil, nil))
}

func ignoreNotFound(err error) error {
	if IsNotFound(err) {
		return nil
	}
	return err
}

// PodEvent is one event of a pod watch.
type PodEvent struct {
	Type string `json:"type"` // ADDED, MODIFIED, DELETED, ERROR, BOOKMARK
	Pod  Pod    `json:"object"`
}

// WatchPod streams the events of one pod from resourceVersion on, until
// ctx ends or the server closes the stream (then the channel closes).
func (c *Client) WatchPod(ctx context.Context, ns, name, resourceVersion string) (<-chan PodEvent, error) {
	q := url.Values{"watch": {"true"}, "fieldSelector": {"metadata.name=" + name}, "resourceVersion": {resourceVersion}}
	resp, err := c.send(ctx, http.MethodGet, podsPath(ns)+"?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	out := make(chan PodEvent)
	go func() {
		defer close(out)
		defer resp.Body.Close()
		dec := json.NewDecoder(resp.Body)
		for {
			var ev PodEvent
			if err := dec.Decode(&ev); err != nil {
				return
			}
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// InCluster returns a client for the pod's own service account and the
// pod's namespace.
func InCluster() (*Client, string, error) {
	cfg, ns, err := inClusterConfig()
	if err != nil {
		return nil, "", err
	}
	c, err := New(cfg)
	return c, ns, err
}
