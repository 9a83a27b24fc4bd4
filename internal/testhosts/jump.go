package testhosts

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
)

// ErrNoNetns is returned by Start when Options.Jump is set and this machine
// cannot give the hosts a network namespace (no nsenter, or no permission
// to make one); New skips (or fails).
var ErrNoNetns = errors.New("cannot put the hosts in a network namespace of their own")

// The last bytes of the jump host's address, and of the address
// ListenBehindJump listens on.
const (
	jumpHostByte  = 3
	spareHostByte = 4
)

// startBehindJump makes the network namespace the app hosts will listen
// in, starts the jump host in it with a relay from this namespace to its
// port (the only way in), and relays the git server's ports into the
// namespace, so that the hosts can still fetch from it. Called before the
// app hosts are started.
func (e *Env) startBehindJump(ctx context.Context) error {
	if _, err := exec.LookPath("nsenter"); err != nil {
		return fmt.Errorf("%w: %v", ErrNoNetns, err)
	}
	ns, err := newNetns()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNoNetns, err)
	}
	e.hostNetns = ns
	if err := e.startJump(ctx); err != nil {
		return err
	}
	gitPorts := []int{e.Git.Port}
	if e.gitPort22Line != "" {
		gitPorts = append(gitPorts, 22)
	}
	for _, port := range gitPorts {
		addr := net.JoinHostPort(e.Git.Addr, strconv.Itoa(port))
		var ln net.Listener
		err := ns.do(func() error {
			var err error
			ln, err = net.Listen("tcp", addr)
			return err
		})
		if err != nil {
			return fmt.Errorf("git server relay: %w", err)
		}
		e.relays = append(e.relays, startRelay(ln, func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		}))
	}
	return nil
}

// startJump starts the jump host: an sshd in the hosts' namespace, on
// 127.X.Y.3, that lets the admin key in for TCP forwarding only (no shell,
// no agent), as a hardened bastion does, and logs every forwarded
// connection (LogLevel DEBUG1: "server_request_direct_tcpip: originator …
// target …"). A relay on the same address and port in this namespace
// leads to it.
func (e *Env) startJump(ctx context.Context) error {
	admin, err := publicKey(e.AdminKey)
	if err != nil {
		return err
	}
	addr := e.subnet.addr(jumpHostByte)
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		return fmt.Errorf("jump host: %w", err)
	}
	name := e.prefix + "jump"
	extra := strings.Join([]string{
		"Match User " + name,
		"\tAllowTcpForwarding local",
		"\tAllowAgentForwarding no",
		"\tPermitTTY no",
		"\tLogLevel DEBUG1",
	}, "\n")
	h, pub, err := e.prepareHost(ctx, name, addr, `restrict,port-forwarding,command="/bin/false" `+admin, extra, func(h *Host) { e.Jump = h })
	if err != nil {
		ln.Close()
		return err
	}
	h.Port = ln.Addr().(*net.TCPAddr).Port
	if err := h.start(ctx, true); err != nil {
		ln.Close()
		return err
	}
	h.started(pub)
	target := ln.Addr().String()
	e.relays = append(e.relays, startRelay(ln, func(ctx context.Context) (c net.Conn, err error) {
		err = e.hostNetns.do(func() error {
			var d net.Dialer
			c, err = d.DialContext(ctx, "tcp", target)
			return err
		})
		return c, err
	}))
	return nil
}

// JumpLog returns what the jump host's sshd logged: among it, a
// "server_request_direct_tcpip: originator … target ADDR port PORT" line
// for every connection it forwarded.
func (e *Env) JumpLog() string {
	if e.Jump == nil {
		return ""
	}
	return e.Jump.logFrom(0)
}

// ListenBehindJump listens on a free port of a spare address (127.X.Y.4)
// in the hosts' namespace (Options.Jump): what accepts there is reached
// through the jump host only, like the hosts. The caller closes it.
func (e *Env) ListenBehindJump() (net.Listener, error) {
	if e.hostNetns == nil {
		return nil, fmt.Errorf("testhosts: ListenBehindJump needs Options.Jump")
	}
	var ln net.Listener
	err := e.hostNetns.do(func() error {
		var err error
		ln, err = net.Listen("tcp", net.JoinHostPort(e.subnet.addr(spareHostByte), "0"))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("testhosts: listen behind the jump host: %w", err)
	}
	return ln, nil
}
