package testhosts

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
)

// Every Env lives on its own /24 inside 127.0.0.0/8, which Linux routes to
// the loopback interface as a whole: the git server is 127.X.Y.2 and app
// host i (from 0) is 127.X.Y.(10+i). So each host has an address of its
// own, and an app server per host can be told apart by address alone.
const (
	gitHostByte   = 2   // last byte of the git server's address
	firstHostByte = 10  // last byte of the first app host's address
	maxHosts      = 245 // 127.X.Y.10 to 127.X.Y.254
)

// lockHostByte and lockPort name the socket that reserves a /24: the Env
// binds 127.X.Y.1 port 1 and keeps the socket until Close. A second bind of
// that address, from this process or another, fails, so two live Envs never
// share a /24; the kernel drops the reservation when the process dies.
const (
	lockHostByte = 1
	lockPort     = 1
)

// subnet is the first three bytes of an Env's addresses.
type subnet [3]byte

// addr returns the address with last byte b in s.
func (s subnet) addr(b int) string {
	return net.IPv4(s[0], s[1], s[2], byte(b)).String()
}

// String returns s as "127.X.Y.0/24".
func (s subnet) String() string {
	return s.addr(0) + "/24"
}

// reserveSubnet picks a random /24 127.X.Y.0 with X and Y in 1..254 (so
// never 127.0.0.x, where other programs listen) that no other live Env
// holds, and returns it with the socket that holds it.
func reserveSubnet() (subnet, *os.File, error) {
	var errs []error
	for attempt := 0; attempt < 20; attempt++ {
		var b [2]byte
		if _, err := rand.Read(b[:]); err != nil {
			return subnet{}, nil, fmt.Errorf("pick addresses: %w", err)
		}
		s := subnet{127, 1 + b[0]%254, 1 + b[1]%254}
		lock, err := bindLock(s)
		if err == nil {
			return s, lock, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			return subnet{}, nil, fmt.Errorf("pick addresses: reserve %s: %w", s, err)
		}
		errs = append(errs, fmt.Errorf("%s: %w", s, err))
	}
	return subnet{}, nil, fmt.Errorf("pick addresses: every /24 tried is taken: %w", errors.Join(errs...))
}

// bindLock binds a TCP socket, without listening, to 127.X.Y.1 port 1. A
// socket that only binds accepts no connection, and without SO_REUSEADDR
// any other bind of the same address and port fails with EADDRINUSE.
func bindLock(s subnet) (*os.File, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	sa := &syscall.SockaddrInet4{Port: lockPort, Addr: [4]byte{s[0], s[1], s[2], lockHostByte}}
	if err := syscall.Bind(fd, sa); err != nil {
		_ = syscall.Close(fd)
		return nil, os.NewSyscallError("bind", err)
	}
	return os.NewFile(uintptr(fd), "testhosts lock "+s.addr(lockHostByte)), nil
}
