package pgtest

import (
	"net"
	"net/url"
	"strconv"
	"sync"
	"testing"
)

// Proxy is a TCP proxy in front of a server, for one client (a deployer)
// whose network to the database the test cuts: while cut, no byte passes
// either way and new connections wait, as on a network that drops packets
// (nothing is closed; TCP would retransmit). Restore lets everything
// through again.
type Proxy struct {
	ln       net.Listener
	upstream string

	mu     sync.Mutex
	cut    bool
	open   *sync.Cond // broadcast when cut ends or the proxy closes
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// Proxy starts a proxy to s on a free 127.0.0.1 port, closed in
// t.Cleanup.
func (s *Server) Proxy(t testing.TB) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("pgtest: proxy: %v", err)
	}
	p := &Proxy{ln: ln, upstream: net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)), conns: map[net.Conn]struct{}{}}
	p.open = sync.NewCond(&p.mu)
	p.wg.Go(p.accept)
	t.Cleanup(p.Close)
	return p
}

// Via rewrites a URL of the server (from New or NewDatabase) to go through
// the proxy.
func (p *Proxy) Via(t testing.TB, dbURL string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatalf("pgtest: proxy: %v", err)
	}
	u.Host = p.ln.Addr().String()
	return u.String()
}

// Cut stops every byte between the clients and the server.
func (p *Proxy) Cut() { p.setCut(true) }

// Restore lets the bytes through again.
func (p *Proxy) Restore() { p.setCut(false) }

func (p *Proxy) setCut(cut bool) {
	p.mu.Lock()
	p.cut = cut
	p.mu.Unlock()
	p.open.Broadcast()
}

// wait blocks while the network is cut; false when the proxy closed.
func (p *Proxy) wait() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.cut && !p.closed {
		p.open.Wait()
	}
	return !p.closed
}

// Close closes the proxy and every connection through it.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.open.Broadcast()
	p.ln.Close()
	p.wg.Wait()
}

// track remembers c so that Close closes it; false when closing already.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

// untrack closes c and forgets it.
func (p *Proxy) untrack(c net.Conn) {
	c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			return
		}
		p.wg.Go(func() { p.serve(c) })
	}
}

func (p *Proxy) serve(client net.Conn) {
	defer p.untrack(client)
	if !p.wait() {
		return
	}
	server, err := net.Dial("tcp", p.upstream)
	if err != nil || !p.track(server) {
		return
	}
	defer p.untrack(server)
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		defer func() { done <- struct{}{} }()
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 && !p.wait() {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
			if err != nil {
				return
			}
		}
	}
	go pipe(server, client)
	go pipe(client, server)
	<-done // one side ended: end both
	client.Close()
	server.Close()
	<-done
}
