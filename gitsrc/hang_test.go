package gitsrc

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
)

func TestHangProbe(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c
		}
	}()
	kh := writeFile(t, "[127.0.0.1]:1 "+authorizedKey(t, newKey(t)))
	s := New(Config{URL: "ssh://git@" + l.Addr().String() + "/x.git", Branch: "release", Key: newPEMKey(t), KnownHosts: kh})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := s.Resolve(ctx, deploy.Push{Branch: "release"}); done <- err }()
	select {
	case err := <-done:
		t.Log("returned", err)
	case <-time.After(5 * time.Second):
		t.Log("HANGS past ctx deadline")
	}
}
