package engine

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// DefaultHost is the engine's socket when DOCKER_HOST is not set.
const DefaultHost = "unix:///var/run/docker.sock"

// ErrAccess means the DOCKER_* variables describe no engine this plugin can
// reach: a malformed or unsupported DOCKER_HOST, or TLS files that are
// missing, unreadable or do not fit the engine.
var ErrAccess = errors.New("docker engine settings")

// Access is how the plugin reaches its engine, as the standard DOCKER_HOST,
// DOCKER_TLS_VERIFY and DOCKER_CERT_PATH variables say, kept so that the
// watchdog can reach the same engine in the same way.
type Access struct {
	// Host is DOCKER_HOST, or DefaultHost.
	Host string
	// TLS is set when DOCKER_CERT_PATH is: the engine is reached over TLS.
	TLS *TLSFiles
}

// TLSFiles are the client's TLS material, read from DOCKER_CERT_PATH.
type TLSFiles struct {
	// Dir is DOCKER_CERT_PATH.
	Dir string
	// Verify is DOCKER_TLS_VERIFY: the engine's certificate is checked
	// against CA (else any certificate is accepted, as the docker CLI does).
	Verify bool
	// CA, Cert and Key are ca.pem, cert.pem and key.pem. Key is the client's
	// private key: it is never printed, nor put in a label, an environment
	// variable or a command line.
	CA, Cert, Key []byte
}

// TLSFileNames are the files of DOCKER_CERT_PATH, as the docker CLI reads them.
var TLSFileNames = [3]string{"ca.pem", "cert.pem", "key.pem"}

// AccessFromEnv reads and checks the DOCKER_* variables through getenv.
// Every error wraps ErrAccess and is one line naming the variable and the fix.
func AccessFromEnv(getenv func(string) string) (Access, error) {
	a := Access{Host: DefaultHost}
	if h := getenv("DOCKER_HOST"); h != "" {
		a.Host = h
	}
	if err := checkHost(a.Host); err != nil {
		return a, err
	}
	dir, verify := getenv("DOCKER_CERT_PATH"), getenv("DOCKER_TLS_VERIFY") != ""
	if dir == "" {
		if verify {
			return a, fmt.Errorf("%w: DOCKER_TLS_VERIFY is set but DOCKER_CERT_PATH is not; set DOCKER_CERT_PATH to the folder with ca.pem, cert.pem and key.pem (docker:dind writes them to /certs/client)", ErrAccess)
		}
		return a, nil
	}
	if !strings.HasPrefix(a.Host, "tcp://") {
		return a, fmt.Errorf("%w: DOCKER_CERT_PATH is set but DOCKER_HOST=%s is no tcp:// address; TLS is for engines reached over TCP: set DOCKER_HOST=tcp://HOST:2376, or unset DOCKER_CERT_PATH", ErrAccess, a.Host)
	}
	t := &TLSFiles{Dir: dir, Verify: verify}
	for i, dst := range []*[]byte{&t.CA, &t.Cert, &t.Key} {
		b, err := os.ReadFile(filepath.Join(dir, TLSFileNames[i]))
		if err != nil {
			return a, fmt.Errorf("%w: DOCKER_CERT_PATH=%s has no readable %s (%v); it needs ca.pem, cert.pem and key.pem, the engine's client certificates (docker:dind: /certs/client)",
				ErrAccess, dir, TLSFileNames[i], errors.Unwrap(err))
		}
		*dst = b
	}
	if _, err := t.config(); err != nil {
		return a, err
	}
	a.TLS = t
	return a, nil
}

// checkHost refuses a DOCKER_HOST the plugin cannot use, saying what it can.
func checkHost(host string) error {
	const supported = "the plugin reaches an engine at unix:///PATH (a socket, rootless Docker's or Podman's too) or tcp://HOST:PORT (TLS with DOCKER_TLS_VERIFY and DOCKER_CERT_PATH)"
	scheme, rest, ok := strings.Cut(host, "://")
	switch {
	case !ok:
		return fmt.Errorf("%w: DOCKER_HOST=%s is no address; %s", ErrAccess, host, supported)
	case scheme == "unix":
		if !strings.HasPrefix(rest, "/") {
			return fmt.Errorf("%w: DOCKER_HOST=%s names no socket path; set it to unix:///var/run/docker.sock or the engine's socket", ErrAccess, host)
		}
		return nil
	case scheme == "tcp":
		u, err := url.Parse(host)
		if err != nil || u.Hostname() == "" {
			return fmt.Errorf("%w: DOCKER_HOST=%s names no host; set it to tcp://HOST:PORT, e.g. tcp://docker:2376 for a docker:dind service with TLS", ErrAccess, host)
		}
		if p := u.Port(); p == "" {
			return fmt.Errorf("%w: DOCKER_HOST=%s names no port; set it to tcp://%s:2376 (TLS) or :2375 (plain)", ErrAccess, host, u.Hostname())
		}
		return nil
	case scheme == "ssh":
		return fmt.Errorf("%w: DOCKER_HOST=%s: ssh:// is not supported (the plugin image has no ssh client); expose the engine over TCP with TLS, or mount its socket; %s", ErrAccess, host, supported)
	default:
		return fmt.Errorf("%w: DOCKER_HOST=%s: %s:// is not supported; %s", ErrAccess, host, scheme, supported)
	}
}

// Remote reports whether the engine is reached over TCP at a host other
// than this one's loopback: then SC runs on another host (a dind service,
// a remote engine), and its published API is reached at that host.
func (a Access) Remote() (host string, ok bool) {
	u, err := url.Parse(a.Host)
	if err != nil || u.Scheme != "tcp" {
		return "", false
	}
	h := u.Hostname()
	if h == "localhost" {
		return h, false
	}
	if ip := net.ParseIP(h); ip != nil && ip.IsLoopback() {
		return h, false
	}
	return h, true
}

// tlsTrouble explains a failed TLS handshake with the engine, or returns nil
// when err is none.
func (a Access) tlsTrouble(err error) error {
	if a.TLS == nil {
		return nil
	}
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		op       *net.OpError
	)
	switch {
	case errors.As(err, &unknown):
		return fmt.Errorf("%w: the engine at %s presented a certificate that ca.pem in DOCKER_CERT_PATH=%s does not trust; copy the CA of that engine's certificates there: %w", ErrAccess, a.Host, a.TLS.Dir, err)
	case errors.As(err, &hostname):
		return fmt.Errorf("%w: the engine's certificate is not for the host of DOCKER_HOST=%s; use the name the certificate is for (docker:dind: docker): %w", ErrAccess, a.Host, err)
	case errors.As(err, &op) && op.Op == "remote error":
		// crypto/tls reports an alert the engine sent as a "remote error".
		return fmt.Errorf("%w: the engine at %s refused the client certificate in DOCKER_CERT_PATH=%s; copy cert.pem and key.pem of that engine's client certificates there: %w", ErrAccess, a.Host, a.TLS.Dir, err)
	}
	return nil
}

// config is the client's TLS configuration, as the docker CLI makes it:
// TLS 1.2 at least, the engine checked against ca.pem alone when Verify.
func (t *TLSFiles) config() (*tls.Config, error) {
	pair, err := tls.X509KeyPair(t.Cert, t.Key)
	if err != nil {
		return nil, fmt.Errorf("%w: DOCKER_CERT_PATH=%s: cert.pem and key.pem are no key pair (%v); copy both from the engine's client certificates", ErrAccess, t.Dir, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(t.CA) {
		return nil, fmt.Errorf("%w: DOCKER_CERT_PATH=%s: ca.pem holds no PEM certificate; copy the engine's CA certificate there", ErrAccess, t.Dir)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}, RootCAs: pool, InsecureSkipVerify: !t.Verify}, nil //nolint:gosec // DOCKER_TLS_VERIFY unset means no verification, as in the docker CLI
}
