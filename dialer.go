package main

import (
	"context"

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/deploy/localrun"
	"github.com/pushdeploy/pushdeploy/deploy/sshrun"
)

// hostDialer sends the hosts-file line "local" to localrun and every
// other host to SSH.
type hostDialer struct {
	ssh   deploy.Dialer
	local deploy.Dialer
}

var _ deploy.Dialer = hostDialer{}

// newHostDialer dials hosts with runner, and the local host with a
// localrun.Runner that lends runner's deploy key to the clone through a
// temporary local agent socket.
func newHostDialer(runner *sshrun.Runner) hostDialer {
	return hostDialer{ssh: runner, local: localrun.New(runner.ServeGitAgent)}
}

func (d hostDialer) Dial(ctx context.Context, h deploy.Host) (deploy.Conn, error) {
	if h.Local {
		return d.local.Dial(ctx, h)
	}
	return d.ssh.Dial(ctx, h)
}
