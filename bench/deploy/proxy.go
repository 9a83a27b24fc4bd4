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
// which the sender is held back as a full TCP window would). A new
// connection costs a round trip before any byte arrives, as TCP's
// handshake does on a real path (see serve).
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

	closing chan struct{}  // closed by Close: ends every wait
	wg      sync.WaitGroup // the accept loop and every connection's goroutines
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
	p := &delayProxy{ln: ln, upstream: upstream, delay: delay, conns: map[net.Conn]struct{}{}, byUID: map[int]int{}, closing: make(chan struct{})}
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
	if !p.closed {
		close(p.closing)
	}
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

// serve connects client to the upstream and forwards both ways until both
// directions have ended or one of them failed.
//
// On loopback the client's connect completed at once, where on a real
// path it takes a round trip, and the server accepts the connection when
// the client's last handshake packet reaches it, one and a half round
// trips after the client began. So the upstream is dialled 3×delay after
// the accept, and what the client sends meanwhile is read at once and
// delivered no earlier than that: its first bytes reach the server when
// they would have (a round trip to connect, then the delay), and the
// server's first answer reaches the client two round trips after it began
// to connect, as on the real path.
func (p *delayProxy) serve(client net.Conn) {
	defer p.wg.Done()
	defer p.untrack(client)
	fromClient := startReading(client)
	if !p.sleepUntil(time.Now().Add(3 * p.delay)) {
		fromClient.stop()
		return
	}
	up, err := net.DialTimeout("tcp", p.upstream, 10*time.Second)
	if err != nil || !p.track(up) {
		fromClient.stop()
		return
	}
	defer p.untrack(up)
	fromUp := startReading(up)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.deliver(up, client, fromClient) }()
	go func() { defer wg.Done(); p.deliver(client, up, fromUp) }()
	wg.Wait()
}

// sleepUntil waits until t; false when the proxy closed first.
func (p *delayProxy) sleepUntil(t time.Time) bool {
	wait := time.Until(t)
	if wait <= 0 {
		return true
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-p.closing:
		return false
	}
}

// chunk is bytes read from one side, with the time they were read.
type chunk struct {
	at time.Time
	b  []byte
}

// stream is one direction of a connection being read: the chunks read
// from its source, in order, and how the source ended.
type stream struct {
	src   net.Conn
	queue chan chunk    // closed when the source has ended
	done  chan struct{} // closed by the consumer that stops taking chunks
	// Set before queue is closed: how src ended, and when.
	readErr error
	endAt   time.Time
}

// startReading reads src into a new stream until src ends or the
// stream is stopped.
func startReading(src net.Conn) *stream {
	s := &stream{src: src, queue: make(chan chunk, maxInFlight), done: make(chan struct{})}
	go func() {
		defer close(s.queue)
		buf := make([]byte, chunkSize)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				select {
				case s.queue <- chunk{time.Now(), append([]byte(nil), buf[:n]...)}:
				case <-s.done:
					s.readErr = net.ErrClosed
					return
				}
			}
			if err != nil {
				s.readErr, s.endAt = err, time.Now()
				return
			}
		}
	}()
	return s
}

// stop ends a stream nobody delivers: it closes the source and waits for
// the reader.
func (s *stream) stop() {
	close(s.done)
	_ = s.src.Close()
	for range s.queue {
	}
}

// deliver writes the chunks of s (read from src) to dst, each delay after
// it was read. At src's end it half-closes dst, so the other side sees the
// end too, delay later; when either side fails it closes both, which also
// ends the other direction.
func (p *delayProxy) deliver(dst, src net.Conn, s *stream) {
	var writeErr error
	for c := range s.queue {
		if !p.sleepUntil(c.at.Add(p.delay)) {
			writeErr = net.ErrClosed
			break
		}
		if _, err := dst.Write(c.b); err != nil {
			writeErr = err
			break
		}
	}
	if writeErr != nil {
		_ = dst.Close()
		s.stop()
		return
	}
	if !errors.Is(s.readErr, io.EOF) {
		// src failed (reset, or closed by the other direction): so
		// does the whole connection.
		_ = src.Close()
		_ = dst.Close()
		return
	}
	// src ended cleanly: pass the end on delay after it came, as its
	// bytes were.
	if !p.sleepUntil(s.endAt.Add(p.delay)) {
		return
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
