package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// delayProxy forwards every TCP connection it accepts to one upstream
// address and delivers each byte, in either direction, delay after it
// arrived: a network path with a one-way delay (round trip 2×delay) and no
// bandwidth limit or loss. Bytes keep their order, and the delay does not
// cost throughput: what arrives while earlier bytes wait is read at once
// and waits alongside them (up to maxInFlight chunks a direction, after
// which the sender is held back as a full TCP window would).
//
// It also counts the connections it accepted by the Unix user that owns
// the client's socket, which tells apart the test hosts (each its own user)
// and the deployer (root) when they all dial from 127.0.0.1.
type delayProxy struct {
	ln       net.Listener
	upstream string
	delay    time.Duration

	mu     sync.Mutex
	conns  map[net.Conn]struct{} // open, both sides
	byUID  map[int]int           // accepted connections by the client's uid; -1: unknown
	closed bool

	wg sync.WaitGroup // the accept loop and every connection's goroutines
}

// maxInFlight bounds the chunks one direction of one connection holds
// while they wait out the delay; chunkSize bounds one chunk.
const (
	maxInFlight = 512
	chunkSize   = 32 << 10
)

// startProxy listens on listenIP (a port of the kernel's choosing) and
// forwards to upstream with delay each way.
func startProxy(ctx context.Context, listenIP, upstream string, delay time.Duration) (*delayProxy, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort(listenIP, "0"))
	if err != nil {
		return nil, fmt.Errorf("proxy for %s: %w", upstream, err)
	}
	p := &delayProxy{ln: ln, upstream: upstream, delay: delay, conns: map[net.Conn]struct{}{}, byUID: map[int]int{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Port is the port the proxy listens on.
func (p *delayProxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// Addr is the address the proxy listens on, as host:port.
func (p *delayProxy) Addr() string { return p.ln.Addr().String() }

// ConnsByUID returns how many connections the proxy accepted so far, by the
// uid of the client's socket (-1 when it could not be told).
func (p *delayProxy) ConnsByUID() map[int]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[int]int, len(p.byUID))
	for k, v := range p.byUID {
		out[k] = v
	}
	return out
}

// Close stops listening, cuts every open connection and waits until all
// of the proxy's goroutines have ended.
func (p *delayProxy) Close() error {
	p.mu.Lock()
	p.closed = true
	err := p.ln.Close()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

// track adds c to the open connections; it returns false (and closes c)
// when the proxy is closing.
func (p *delayProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *delayProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

func (p *delayProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		uid, ok := socketUID(c.RemoteAddr(), c.LocalAddr())
		if !ok {
			uid = -1
		}
		p.mu.Lock()
		p.byUID[uid]++
		p.mu.Unlock()
		if !p.track(c) {
			return
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

// serve connects c to the upstream and forwards both ways until both
// directions have ended or one of them failed.
func (p *delayProxy) serve(client net.Conn) {
	defer p.wg.Done()
	defer p.untrack(client)
	// The connect is not delayed here: the client's own connect already
	// completed at the listener. The first bytes each way pay the delay.
	up, err := net.DialTimeout("tcp", p.upstream, 10*time.Second)
	if err != nil {
		return
	}
	if !p.track(up) {
		return
	}
	defer p.untrack(up)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.forward(up, client) }()
	go func() { defer wg.Done(); p.forward(client, up) }()
	wg.Wait()
}

// chunk is bytes read from one side, with the time they were read.
type chunk struct {
	at time.Time
	b  []byte
}

// forward copies src to dst, each chunk written delay after it was read.
// At src's end it half-closes dst, so the other side sees the end too,
// delay later; when either side fails it closes both, which also ends the
// other direction.
func (p *delayProxy) forward(dst, src net.Conn) {
	queue := make(chan chunk, maxInFlight)
	done := make(chan struct{})
	// Set by the reader before it closes queue: how src ended, and when.
	var readErr error
	var endAt time.Time
	go func() {
		defer close(queue)
		buf := make([]byte, chunkSize)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				select {
				case queue <- chunk{time.Now(), append([]byte(nil), buf[:n]...)}:
				case <-done:
					readErr = net.ErrClosed
					return
				}
			}
			if err != nil {
				readErr, endAt = err, time.Now()
				return
			}
		}
	}()
	var writeErr error
	for c := range queue {
		if wait := time.Until(c.at.Add(p.delay)); wait > 0 {
			time.Sleep(wait)
		}
		if _, err := dst.Write(c.b); err != nil {
			writeErr = err
			break
		}
	}
	close(done)
	if writeErr != nil {
		_ = src.Close()
		_ = dst.Close()
		for range queue { // let the reader end
		}
		return
	}
	if !errors.Is(readErr, io.EOF) {
		// src failed (reset, or closed by the other direction): so
		// does the whole connection.
		_ = src.Close()
		_ = dst.Close()
		return
	}
	// src ended cleanly: pass the end on delay after it came, as its
	// bytes were.
	if wait := time.Until(endAt.Add(p.delay)); wait > 0 {
		time.Sleep(wait)
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

// socketUID returns the uid that owns the TCP socket from local to remote
// (as that socket sees them), from /proc/net/tcp: on this machine, the
// client's end of a connection the proxy accepted.
func socketUID(local, remote net.Addr) (int, bool) {
	l, ok1 := local.(*net.TCPAddr)
	r, ok2 := remote.(*net.TCPAddr)
	if !ok1 || !ok2 || l.IP.To4() == nil || r.IP.To4() == nil {
		return 0, false
	}
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	return findSocketUID(f, procAddr(l), procAddr(r))
}

// procAddr renders a as /proc/net/tcp does: the IPv4 address as the
// kernel's 32-bit word in native byte order, then the port, both in hex.
func procAddr(a *net.TCPAddr) string {
	return fmt.Sprintf("%08X:%04X", binary.NativeEndian.Uint32(a.IP.To4()), a.Port)
}

// findSocketUID finds the line of the socket from local to remote in a
// /proc/net/tcp listing and returns its uid column.
func findSocketUID(r io.Reader, local, remote string) (int, bool) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid ...
		if len(f) < 8 || f[1] != local || f[2] != remote {
			continue
		}
		uid, err := strconv.Atoi(f[7])
		return uid, err == nil
	}
	return 0, false
}
