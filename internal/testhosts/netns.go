package testhosts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// netns is a Linux network namespace of its own, with its loopback
// interface up: what listens in it cannot be reached from this process's
// namespace, loopback included, and the other way round. It lives while
// its file is open (no process needs to stay in it).
type netns struct {
	f *os.File // /proc/thread-self/ns/net of the thread that made it
}

// newNetns makes a network namespace and brings its loopback up.
func newNetns() (*netns, error) {
	var ns *netns
	err := onThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return os.NewSyscallError("unshare", err)
		}
		f, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			return err
		}
		ns = &netns{f: f}
		return loopbackUp()
	})
	if err != nil {
		if ns != nil {
			ns.f.Close()
		}
		return nil, fmt.Errorf("network namespace: %w", err)
	}
	return ns, nil
}

// path is the namespace's file, for nsenter --net.
func (ns *netns) path() string {
	return "/proc/" + strconv.Itoa(os.Getpid()) + "/fd/" + strconv.Itoa(int(ns.f.Fd()))
}

func (ns *netns) close() error { return ns.f.Close() }

// do runs fn on a thread that is in the namespace: sockets fn creates
// belong to it (and stay there when fn returns).
func (ns *netns) do(fn func() error) error {
	return onThread(func() error {
		if err := setns(ns.f); err != nil {
			return err
		}
		return fn()
	})
}

// onThread runs fn on an OS thread of its own and puts the thread back in
// this process's network namespace afterwards; if that fails, the thread
// is discarded (a goroutine that ends locked ends its thread), so that no
// other goroutine ever runs in the wrong namespace.
func onThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer home.Close()
		err = fn()
		if backErr := setns(home); backErr != nil {
			errc <- errors.Join(err, backErr)
			return // still locked: the thread goes away
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}

func setns(f *os.File) error {
	return os.NewSyscallError("setns", unix.Setns(int(f.Fd()), unix.CLONE_NEWNET))
}

// loopbackUp sets the flag IFF_UP on "lo" of the current thread's
// namespace (as ip link set lo up), which gives it 127.0.0.0/8 and ::1.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return os.NewSyscallError("ioctl SIOCGIFFLAGS lo", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return os.NewSyscallError("ioctl SIOCSIFFLAGS lo", unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr))
}

// relay forwards every connection its listener accepts to dst, as a router
// with port forwarding would: it bridges this process's network namespace
// and a netns (one end in each). It runs until close.
type relay struct {
	ln   net.Listener
	dial func(ctx context.Context) (net.Conn, error)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]bool
}

// startRelay serves ln until close, connecting each accepted connection to
// what dial returns.
func startRelay(ln net.Listener, dial func(ctx context.Context) (net.Conn, error)) *relay {
	ctx, cancel := context.WithCancel(context.Background())
	r := &relay{ln: ln, dial: dial, ctx: ctx, cancel: cancel, conns: map[net.Conn]bool{}}
	r.wg.Go(r.serve)
	return r
}

func (r *relay) serve() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return // closed
		}
		r.wg.Go(func() { r.forward(c) })
	}
}

func (r *relay) forward(c net.Conn) {
	if !r.track(c) {
		return
	}
	defer r.untrack(c)
	up, err := r.dial(r.ctx)
	if err != nil {
		return // the client sees its connection closed, as with a refused port behind a router
	}
	if !r.track(up) {
		return
	}
	defer r.untrack(up)
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
	<-done
}

// track registers c for close, or closes it when the relay is closing.
func (r *relay) track(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conns == nil {
		c.Close()
		return false
	}
	r.conns[c] = true
	return true
}

func (r *relay) untrack(c net.Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c.Close()
	delete(r.conns, c)
}

// close stops accepting, closes every connection and waits for the
// relay's goroutines.
func (r *relay) close() error {
	err := r.ln.Close()
	r.cancel()
	r.mu.Lock()
	for c := range r.conns {
		c.Close()
	}
	r.conns = nil
	r.mu.Unlock()
	r.wg.Wait()
	return err
}
