package sshrun

import (
	"context"
	"errors"
	"sync"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// KeyedDialer keeps the keys in memory only while hosts are connected, as
// the original script ran ssh-agent for the update and killed it after:
// the first Dial loads them into fresh agent keyrings (open), and closing
// the last connection empties those. Under `serve`, which runs for months,
// the keyrings then exist during deployments (and listings) only. Dials
// that overlap (a deployment and a GET /api/releases) share one set.
type KeyedDialer struct {
	// open loads the keys and returns a dialer that uses them, and the
	// func that empties them.
	open func() (deploy.Dialer, func(), error)

	mu     sync.Mutex
	dialer deploy.Dialer
	close  func()
	users  int // connections open, and dials under way
	closed bool
}

var _ deploy.Dialer = (*KeyedDialer)(nil)

// NewKeyedDialer returns a dialer that calls open at the first Dial (and at
// the first Dial after every connection has closed) and the func open returns
// when the last connection closes. open loads the keys and returns a dialer
// that uses them.
func NewKeyedDialer(open func() (deploy.Dialer, func(), error)) *KeyedDialer {
	return &KeyedDialer{open: open}
}

func (k *KeyedDialer) Dial(ctx context.Context, h deploy.Host) (deploy.Conn, error) {
	d, err := k.acquire()
	if err != nil {
		return nil, err
	}
	c, err := d.Dial(ctx, h)
	if err != nil {
		k.release()
		return nil, err
	}
	return &keyedConn{Conn: c, release: sync.OnceFunc(k.release)}, nil
}

func (k *KeyedDialer) acquire() (deploy.Dialer, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return nil, errors.New("the deployer is shutting down: keys are closed")
	}
	if k.dialer == nil {
		d, closeKeys, err := k.open()
		if err != nil {
			return nil, err
		}
		k.dialer, k.close = d, closeKeys
	}
	k.users++
	return k.dialer, nil
}

func (k *KeyedDialer) release() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.users--
	if k.users == 0 && k.close != nil {
		k.close()
		k.dialer, k.close = nil, nil
	}
}

// Close empties the keys now, even if a connection is still open (it stays
// usable, but nothing can sign with them any more), and refuses later
// dials: the command is ending.
func (k *KeyedDialer) Close() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.close != nil {
		k.close()
	}
	k.dialer, k.close, k.closed = nil, nil, true
}

// keyedConn gives its share of the keys back when it is closed.
type keyedConn struct {
	deploy.Conn
	release func()
}

func (c *keyedConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}
