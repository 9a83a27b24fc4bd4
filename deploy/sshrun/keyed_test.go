package sshrun

import (
	"context"
	"errors"
	"testing"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// namedDialer hands out connections that only say which dialer made them.
type namedDialer string

func (d namedDialer) Dial(context.Context, deploy.Host) (deploy.Conn, error) {
	return namedConn(d), nil
}

type namedConn string

func (namedConn) Run(context.Context, deploy.Command) error { return nil }
func (namedConn) Close() error                              { return nil }

// failingDialer refuses every host, as an unreachable pool would.
type failingDialer struct{}

func (failingDialer) Dial(context.Context, deploy.Host) (deploy.Conn, error) {
	return nil, errors.New("connection refused")
}

// TestKeyedDialerHoldsKeysOnlyWhileConnected: the keys are loaded at the
// first dial, shared by overlapping connections, emptied when the last one
// closes (also when dials fail), loaded afresh for the next deployment,
// and refused after Close.
func TestKeyedDialerHoldsKeysOnlyWhileConnected(t *testing.T) {
	var loaded, emptied int
	inner := deploy.Dialer(namedDialer("ssh"))
	k := &KeyedDialer{open: func() (deploy.Dialer, func(), error) {
		loaded++
		return inner, func() { emptied++ }, nil
	}}
	ctx := context.Background()
	web1, web2 := deploy.Host{Name: "web1", Addr: "web1", Port: 22}, deploy.Host{Name: "web2", Addr: "web2", Port: 22}
	check := func(when string, wantLoaded, wantEmptied int) {
		t.Helper()
		if loaded != wantLoaded || emptied != wantEmptied {
			t.Fatalf("%s: keys loaded %d times, emptied %d; want %d, %d", when, loaded, emptied, wantLoaded, wantEmptied)
		}
	}
	check("before any dial", 0, 0)

	c1, err := k.Dial(ctx, web1)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := k.Dial(ctx, web2)
	if err != nil {
		t.Fatal(err)
	}
	check("two hosts connected", 1, 0)
	_ = c1.Close()
	_ = c1.Close() // a second Close gives nothing back twice
	check("one host still connected", 1, 0)
	_ = c2.Close()
	check("every connection closed", 1, 1)

	// The next deployment loads them afresh.
	c3, err := k.Dial(ctx, web1)
	if err != nil {
		t.Fatal(err)
	}
	check("next deployment", 2, 1)
	_ = c3.Close()
	check("next deployment done", 2, 2)

	// A dial that fails gives its share back at once.
	inner = failingDialer{}
	if _, err := k.Dial(ctx, web1); err == nil {
		t.Fatal("dial to an unreachable host succeeded")
	}
	check("after a failed dial", 3, 3)

	// Close empties what is loaded and refuses later dials.
	inner = namedDialer("ssh")
	c4, err := k.Dial(ctx, web1)
	if err != nil {
		t.Fatal(err)
	}
	k.Close()
	check("closed with a connection open", 4, 4)
	if _, err := k.Dial(ctx, web2); err == nil {
		t.Error("dial after Close succeeded")
	}
	_ = c4.Close()
	check("connection closed after Close", 4, 4)
}
