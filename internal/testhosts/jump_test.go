package testhosts_test

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// TestJump: with Options.Jump the hosts cannot be reached from here, not
// even their TCP port, but through the jump host they can (its sshd logs
// each forwarded connection); the jump host itself gives no shell; and the
// hosts still reach the git server.
func TestJump(t *testing.T) {
	t.Parallel()
	e := testhosts.New(t, testhosts.Options{Hosts: 2, Jump: true})
	ctx := t.Context()
	h := e.Hosts[0]

	direct := exec.CommandContext(ctx, "ssh", "-F", "/dev/null", "-i", e.AdminKey,
		"-o", "UserKnownHostsFile="+e.KnownHosts, "-o", "StrictHostKeyChecking=yes",
		"-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=5",
		"-p", itoa(h.Port), h.User+"@"+h.Addr, "true")
	if out := fails(t, direct); !strings.Contains(out, "Connection refused") {
		t.Errorf("direct login to %s: got %q, want Connection refused (the host listens in its own namespace)", h.Name, out)
	}

	for _, h := range e.Hosts {
		if got := output(t, e.SSH(ctx, h, "id", "-un")); got != h.User {
			t.Errorf("%s through the jump host: id -un = %q, want %q", h.Name, got, h.User)
		}
		want := fmt.Sprintf("target %s port %d", h.Addr, h.Port)
		if log := e.JumpLog(); !strings.Contains(log, "server_request_direct_tcpip") || !strings.Contains(log, want) {
			t.Errorf("the jump host's log does not show the connection forwarded to %s (%q):\n%s", h.Name, want, log)
		}
	}

	if out := fails(t, e.SSH(ctx, e.Jump, "id")); strings.Contains(out, e.Jump.User) {
		t.Errorf("the jump host ran a command for the admin key: %s", out)
	}

	// The hosts reach the git server (relayed into their namespace).
	banner := "import socket, sys; s = socket.create_connection((sys.argv[1], int(sys.argv[2])), 5); print(s.recv(64).decode().strip())"
	if out := output(t, e.SSH(ctx, h, "python3", "-c", banner, e.Git.Addr, itoa(e.Git.Port))); !strings.HasPrefix(out, "SSH-2.0-") {
		t.Errorf("host %s reading the git server's banner: got %q, want SSH-2.0-…", h.Name, out)
	}

	// Stop and Restart work for the jump host as for any host.
	if err := e.Jump.Stop(); err != nil {
		t.Fatal(err)
	}
	cmd := e.SSH(ctx, h, "true")
	cmd.WaitDelay = 10 * time.Second
	fails(t, cmd)
	if err := e.Jump.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	output(t, e.SSH(ctx, h, "true"))
}
