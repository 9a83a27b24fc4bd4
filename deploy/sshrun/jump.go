package sshrun

// jump.go: hosts behind jump hosts (bastions), as OpenSSH's ProxyJump.
// The deployer logs into the first jump host, asks it for a TCP connection
// to the next hop (a direct-tcpip channel), speaks SSH to that hop over the
// channel, and so on to the host. Every hop's key is checked against
// known_hosts and every hop is logged into with the admin key, as OpenSSH
// does; no agent is forwarded to a jump host, so it only ever relays
// encrypted bytes.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// jumpPool shares one connection per jump chain among the hosts behind it:
// a pool of 20 hosts behind one bastion logs into the bastion once. A
// connection lives while a host connection (or a dial) through it is open,
// so the keys are not needed for it after the last host is closed
// (KeyedDialer).
type jumpPool struct {
	mu   sync.Mutex
	open map[string]*jump // by chainKey; entries that failed or died are removed
}

// jump is one connection to a jump host, through the jumps before it.
type jump struct {
	pool *jumpPool
	key  string // chainKey of the hops up to this one
	name string // this hop as user@addr:port, for messages

	ready  chan struct{} // closed when the dial has ended; then client, via and err are set
	client *ssh.Client
	via    *jump // the hop before this one, held while this one is open
	err    error

	users int // guarded by pool.mu: dials under way and connections through it
}

// chainKey identifies a chain of jump hosts.
func chainKey(hops []deploy.Host) string {
	keys := make([]string, len(hops))
	for i, h := range hops {
		keys[i] = hopName(h)
	}
	return strings.Join(keys, ",")
}

// hopName names a jump host in messages and keys: user@addr:port.
func hopName(h deploy.Host) string {
	return h.User + "@" + h.Address()
}

// acquire returns a logged-in connection to the last of hops, through the
// ones before it, dialing what is not open yet; nil for no hops. ctx bounds
// the dial (the host's connect timeout covers the whole chain). The caller
// must release what it gets.
func (p *jumpPool) acquire(r *Runner, parent, ctx context.Context, hops []deploy.Host) (*jump, error) {
	if len(hops) == 0 {
		return nil, nil
	}
	key := chainKey(hops)
	p.mu.Lock()
	j := p.open[key]
	if j == nil {
		j = &jump{pool: p, key: key, name: hopName(hops[len(hops)-1]), ready: make(chan struct{}), users: 1}
		if p.open == nil {
			p.open = make(map[string]*jump)
		}
		p.open[key] = j
		p.mu.Unlock()
		j.dial(r, parent, ctx, hops)
	} else {
		j.users++
		p.mu.Unlock()
	}
	select {
	case <-j.ready: // at once for the dial made above
	default:
		select {
		case <-j.ready:
		case <-ctx.Done():
			j.release()
			return nil, fmt.Errorf("jump host %s: %w", j.name, r.timedOut(parent, ctx, "", ctx.Err()))
		}
	}
	if j.err != nil {
		j.release()
		return nil, j.err
	}
	return j, nil
}

// dial connects to the last of hops; others that asked for the same chain
// meanwhile wait for it and share its result.
func (j *jump) dial(r *Runner, parent, ctx context.Context, hops []deploy.Host) {
	defer close(j.ready)
	last := hops[len(hops)-1]
	via, err := j.pool.acquire(r, parent, ctx, hops[:len(hops)-1])
	if err != nil {
		j.fail(err)
		return
	}
	client, err := r.login(parent, ctx, via, last.User, last.Address())
	if err != nil {
		via.release()
		j.fail(&JumpError{Jump: hopName(last), Err: err})
		return
	}
	j.client, j.via = client, via
	go keepAlive(client, r.cfg.KeepAlive)
	// A jump host that goes away (rebooted, dropped) is dialed again by
	// the next host that needs it.
	go func() {
		_ = client.Wait()
		j.pool.forget(j)
	}()
}

// fail records a failed dial and removes j from the pool, so that the
// next dial tries again.
func (j *jump) fail(err error) {
	j.err = err
	j.pool.forget(j)
}

func (p *jumpPool) forget(j *jump) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open[j.key] == j {
		delete(p.open, j.key)
	}
}

// release gives back one use of j; the last one closes it, and then gives
// back its own use of the hop before it. A nil *jump (no jump host) does
// nothing.
func (j *jump) release() {
	if j == nil {
		return
	}
	p := j.pool
	p.mu.Lock()
	j.users--
	last := j.users == 0
	if last && p.open[j.key] == j {
		delete(p.open, j.key)
	}
	p.mu.Unlock()
	if last && j.client != nil {
		j.client.Close()
		j.via.release()
	}
}

// JumpError is a jump host that could not be reached or logged into: the
// hosts behind it were not tried.
type JumpError struct {
	Jump string // the jump host, user@addr:port
	Err  error  // why: the connect or login error, naming the jump host
}

func (e *JumpError) Error() string { return "jump host: " + e.Err.Error() }

func (e *JumpError) Unwrap() error { return e.Err }

// tunnel opens a TCP connection from the jump host to addr.
func (r *Runner) tunnel(parent, ctx context.Context, via *jump, addr string) (net.Conn, error) {
	nc, err := via.client.DialContext(ctx, "tcp", addr)
	if err == nil {
		return nc, nil
	}
	var oe *ssh.OpenChannelError
	if errors.As(err, &oe) {
		switch oe.Reason {
		case ssh.Prohibited:
			err = fmt.Errorf("the jump host %s refuses to forward connections (%s): allow it for the login user with AllowTcpForwarding in its sshd_config; "+
				"there, an authorized_keys line with restrict needs port-forwarding, and one with permitopen must list this host", via.name, oe.Message)
		case ssh.ConnectionFailed:
			err = fmt.Errorf("the jump host %s cannot connect to it: %s", via.name, oe.Message)
		}
	}
	return nil, fmt.Errorf("connect %s through %s: %w", addr, via.name, r.timedOut(parent, ctx, "", err))
}

// tunnelHandshake runs the SSH handshake over a tunnel. A tunnel has no
// deadlines and closing it only asks the jump host to close it, so the
// handshake runs in a goroutine that Dial does not wait for when ctx ends
// first: handshake closes the tunnel then and fails, and the goroutine
// ends when the jump host answers, or when the jump connection closes (at
// the latest when its last user releases it).
func tunnelHandshake(ctx context.Context, nc net.Conn, addr string, cfg *ssh.ClientConfig) (*ssh.Client, error) {
	type result struct {
		client *ssh.Client
		err    error
	}
	done := make(chan result, 1)
	go func() {
		c, err := handshake(ctx, nc, addr, cfg)
		done <- result{c, err}
	}()
	select {
	case res := <-done:
		return res.client, res.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
