package testenv

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Proxy is a forward HTTP proxy, as a corporate network has one: it
// forwards plain requests (absolute URIs) and tunnels CONNECT, and records
// every request it was asked to carry, so that a test can tell what went
// through it.
type Proxy struct {
	URL string
	srv *http.Server
	mu  sync.Mutex
	log []string
}

// StartProxy starts the proxy on host (an address of this machine that the
// steps' containers reach, see HostAddress).
func StartProxy(host string) (*Proxy, error) {
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort(host, strconv.Itoa(ports[0]))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	p := &Proxy{URL: "http://" + addr}
	direct := &http.Transport{Proxy: nil}
	p.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.record(r.Method + " " + r.URL.String() + " " + r.Host)
		if r.Method == http.MethodConnect {
			p.tunnel(w, r)
			return
		}
		r.RequestURI = ""
		resp, err := direct.RoundTrip(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, vs := range resp.Header {
			for _, v := range vs {
				w.Header().Add(k, v)
			}
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	})}
	go func() { _ = p.srv.Serve(l) }()
	return p, nil
}

func (p *Proxy) record(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.log = append(p.log, line)
}

// tunnel carries a CONNECT's bytes both ways.
func (p *Proxy) tunnel(w http.ResponseWriter, r *http.Request) {
	up, err := net.DialTimeout("tcp", r.Host, 5*time.Second)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		up.Close()
		http.Error(w, "no hijack", http.StatusInternalServerError)
		return
	}
	down, _, err := hj.Hijack()
	if err != nil {
		up.Close()
		return
	}
	fmt.Fprint(down, "HTTP/1.1 200 Connection established\r\n\r\n")
	go func() { _, _ = io.Copy(up, down); up.Close() }()
	go func() { _, _ = io.Copy(down, up); down.Close() }()
}

// Requests lists what the proxy was asked to carry: method, URL and host.
func (p *Proxy) Requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.log...)
}

// Stop ends the proxy.
func (p *Proxy) Stop() { _ = p.srv.Close() }
