package cli

import (
	"context"
	"testing"

	"github.com/pushdeploy/pushdeploy/deploy"
)

type namedDialer string

func (d namedDialer) Dial(context.Context, deploy.Host) (deploy.Conn, error) {
	return namedConn(d), nil
}

type namedConn string

func (namedConn) Run(context.Context, deploy.Command) error { return nil }
func (namedConn) Close() error                              { return nil }

func TestHostDialer(t *testing.T) {
	d := hostDialer{ssh: namedDialer("ssh"), local: namedDialer("local")}
	for _, tt := range []struct {
		host deploy.Host
		want namedConn
	}{
		{deploy.Host{Name: "local", Addr: "localhost", Local: true}, "local"},
		{deploy.Host{Name: "localhost", User: "deploy", Addr: "localhost", Port: 22}, "ssh"},
		{deploy.Host{Name: "web1", User: "deploy", Addr: "web1", Port: 22}, "ssh"},
	} {
		c, err := d.Dial(context.Background(), tt.host)
		if err != nil || c != tt.want {
			t.Errorf("Dial(%s) = %v, %v; want the %s dialer", tt.host, c, err, tt.want)
		}
	}
}
