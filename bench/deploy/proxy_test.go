package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"math/big"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// startServer serves every connection on a fresh loopback listener with
// handle, until the test ends.
func startServer(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}

// echo copies what it reads back, and half-closes at the end.
func echo(c net.Conn) {
	_, _ = io.Copy(c, c)
	_ = c.(*net.TCPConn).CloseWrite()
}

func newProxy(t *testing.T, upstream string, delay time.Duration) *delayProxy {
	t.Helper()
	p, err := startProxy(context.Background(), "127.0.0.1", upstream, delay)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	return c.(*net.TCPConn)
}

func TestProxyDelaysEachWay(t *testing.T) {
	const delay = 40 * time.Millisecond
	arrived := make(chan time.Time, 10)
	addr := startServer(t, func(c net.Conn) {
		b := make([]byte, 1)
		for {
			if _, err := c.Read(b); err != nil {
				return
			}
			arrived <- time.Now()
			if _, err := c.Write(b); err != nil {
				return
			}
		}
	})
	c := dial(t, newProxy(t, addr, delay).Addr())
	var rtts []time.Duration
	for i := 0; i < 5; i++ {
		sent := time.Now()
		if _, err := c.Write([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 1)
		if _, err := io.ReadFull(c, b); err != nil {
			t.Fatal(err)
		}
		back := time.Now()
		at := <-arrived
		if b[0] != byte(i) {
			t.Fatalf("round trip %d: got byte %d back", i, b[0])
		}
		if there, home := at.Sub(sent), back.Sub(at); there < delay || home < delay {
			t.Errorf("round trip %d: %v there and %v back, want each ≥ %v", i, there, home, delay)
		}
		rtts = append(rtts, back.Sub(sent))
	}
	slices.Sort(rtts)
	// A loaded machine adds to the delay, but not a whole second at the
	// median; more would mean the proxy waits where it should not.
	if m := rtts[len(rtts)/2]; m > 2*delay+time.Second {
		t.Errorf("median round trip %v, want about %v", m, 2*delay)
	}
}

func TestProxyNewConnectionCostsARoundTrip(t *testing.T) {
	const delay = 40 * time.Millisecond
	type seen struct{ accepted, arrived time.Time }
	server := make(chan seen, 1)
	addr := startServer(t, func(c net.Conn) {
		accepted := time.Now()
		b := make([]byte, 1)
		if _, err := c.Read(b); err != nil {
			return
		}
		server <- seen{accepted, time.Now()}
		_, _ = c.Write(b)
	})
	p := newProxy(t, addr, delay)
	start := time.Now()
	c := dial(t, p.Addr())
	if _, err := c.Write([]byte("x")); err != nil { // at once, as an SSH client sends its version
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	back := time.Since(start)
	s := <-server
	// On a real path: the connect takes a round trip (2 delays), the
	// server accepts when the last handshake packet reaches it (3), the
	// first byte reaches it a delay after the connect returned (3), and
	// its answer is back a delay later (4).
	if got := s.accepted.Sub(start); got < 3*delay {
		t.Errorf("the server saw the connection %v after the client's connect, want ≥ %v", got, 3*delay)
	}
	if got := s.arrived.Sub(start); got < 3*delay {
		t.Errorf("the first byte arrived %v after the client's connect, want ≥ %v", got, 3*delay)
	}
	if back < 4*delay || back > 4*delay+time.Second {
		t.Errorf("the first round trip on a new connection took %v, want about %v", back, 4*delay)
	}
}

func TestProxyKeepsBytesInOrderAndPassesTheEnd(t *testing.T) {
	c := dial(t, newProxy(t, startServer(t, echo), 5*time.Millisecond).Addr())
	data := make([]byte, 3<<20)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	werr := make(chan error, 1)
	go func() {
		// Writes of assorted sizes, so chunks split and join anywhere.
		rest := data
		for len(rest) > 0 {
			n, _ := rand.Int(rand.Reader, big.NewInt(70000))
			k := min(int(n.Int64())+1, len(rest))
			if _, err := c.Write(rest[:k]); err != nil {
				werr <- err
				return
			}
			rest = rest[k:]
		}
		werr <- c.CloseWrite()
	}()
	got, err := io.ReadAll(c) // until the echo's end comes back through
	if err != nil {
		t.Fatalf("read: %v (after %d bytes)", err, len(got))
	}
	if err := <-werr; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes back, want the %d sent, in order", len(got), len(data))
	}
}

func TestProxyDelayCostsNoThroughput(t *testing.T) {
	const delay = 50 * time.Millisecond
	const size = 32 << 20
	addr := startServer(t, func(c net.Conn) {
		n, _ := io.Copy(io.Discard, c)
		_, _ = c.Write([]byte{byte(n >> 20)})
	})
	c := dial(t, newProxy(t, addr, delay).Addr())
	start := time.Now()
	if _, err := io.CopyN(c, rand.Reader, size); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if b[0] != size>>20 {
		t.Fatalf("server got %d MiB, want %d", b[0], size>>20)
	}
	// Forwarding one chunk per delay would take size/chunkSize×delay
	// (51 s); a pipelined proxy takes the delay each way plus the copy.
	if took > 10*time.Second {
		t.Errorf("32 MiB through a %v proxy took %v, want well under 10s", delay, took)
	}
	t.Logf("32 MiB through a %v delay: %v", delay, took)
}

func TestProxyCountsClientsByUID(t *testing.T) {
	p := newProxy(t, startServer(t, echo), 0)
	c := dial(t, p.Addr())
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	got := p.ConnsByUID()
	want := map[int]int{os.Getuid(): 1}
	if len(got) != 1 || got[os.Getuid()] != 1 {
		t.Errorf("ConnsByUID() = %v, want %v", got, want)
	}
}

func TestProxyCloseCutsConnections(t *testing.T) {
	p, err := startProxy(context.Background(), "127.0.0.1", startServer(t, echo), time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, p.Addr())
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- p.Close() }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return with a connection open")
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("the connection still answers after Close")
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		t.Error("the proxy still accepts after Close")
	}
}

func TestFindSocketUID(t *testing.T) {
	const table = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:D431 0A07537F:9C41 01 00000000:00000000 00:00000000 00000000  1003        0 2 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:D432 0A07537F:9C41 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 20 4 30 10 -1
`
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 0xD431}
	remote := &net.TCPAddr{IP: net.IPv4(127, 83, 7, 10), Port: 0x9C41}
	if got, want := procAddr(remote), "0A07537F:9C41"; got != want {
		t.Fatalf("procAddr(%v) = %s, want %s (little-endian machines)", remote, got, want)
	}
	for _, tc := range []struct {
		local, remote string
		uid           int
		ok            bool
	}{
		{procAddr(local), procAddr(remote), 1003, true},
		{"0100007F:D432", procAddr(remote), 0, true},
		{"0100007F:D433", procAddr(remote), 0, false},
		{procAddr(remote), procAddr(local), 0, false}, // the other end's view
	} {
		uid, ok := findSocketUID(strings.NewReader(table), tc.local, tc.remote)
		if uid != tc.uid || ok != tc.ok {
			t.Errorf("findSocketUID(%s, %s) = %d, %v; want %d, %v", tc.local, tc.remote, uid, ok, tc.uid, tc.ok)
		}
	}
}
