package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// TestEndToEndJump deploys to hosts that the deployer cannot reach (their
// sshd listen in a network namespace of their own: testhosts
// Options.Jump) through a jump host, with DEPLOY_SSH_JUMP and then with
// the hosts file's own "via": real sshd, git over SSH from the hosts (the
// deploy key lent through the tunnel), pip. The jump host's sshd logs each
// forwarded connection. Without the jump host the deploy cannot log in;
// with the jump host's key unknown, check and deploy say that it is the
// jump host's, with its fingerprint, and try no host.
func TestEndToEndJump(t *testing.T) {
	e := newE2EWith(t, testhosts.Options{Hosts: 2, Jump: true})
	jump := e.env.Jump
	sha1 := e.commit("1.0", nil)

	r := e.pushdeploy("deploy")
	if r.code != 1 || !strings.Contains(r.stderr, "connection refused") {
		t.Fatalf("deploy without the jump host: exit %d, want 1 and connection refused\n%s", r.code, r.stderr)
	}
	for _, h := range e.env.Hosts {
		if got := releases(t, h); len(got) != 0 {
			t.Errorf("%s: releases %v after a deploy that could not log in", h.Name, got)
		}
	}

	e.vars["DEPLOY_SSH_JUMP"] = jump.Name
	r = e.pushdeploy("check")
	if r.code != 0 {
		t.Fatalf("check through the jump host: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	jumpLine := fmt.Sprintf("ok    %-28s %-11s reached, host key known, logged in as %s; jump host of %s, %s",
		jump.Name, "jump", jump.User, e.env.Hosts[0].Name, e.env.Hosts[1].Name)
	if !strings.Contains(r.stdout, jumpLine) {
		t.Errorf("check output lacks the jump host's line\n%s\nin:\n%s", jumpLine, r.stdout)
	}
	for _, h := range e.env.Hosts {
		if want := "logged in as " + h.User + " through " + jump.Name; !strings.Contains(r.stdout, want) {
			t.Errorf("check output lacks %q:\n%s", want, r.stdout)
		}
	}
	// config, keys, repository, the jump host, then login, host, python,
	// git access per host.
	if n := strings.Count(r.stdout, "ok "); n != 4+4*len(e.env.Hosts) || strings.Contains(r.stdout, "FAIL") {
		t.Errorf("want every check ok (%d):\n%s", n, r.stdout)
	}

	logins := strings.Count(e.env.JumpLog(), "Accepted publickey for "+jump.User+" ")
	dep1 := e.mustDeploy()
	if got := strings.Count(e.env.JumpLog(), "Accepted publickey for "+jump.User+" ") - logins; got != 1 {
		t.Errorf("the deploy logged into the jump host %d times, want once for both hosts", got)
	}
	if dep1.Commit != sha1 || dep1.Status != "succeeded" || len(dep1.Hosts) != 2 {
		t.Fatalf("deployment %+v, want commit %s on 2 hosts", dep1, sha1)
	}
	for _, h := range e.env.Hosts {
		if got, want := current(h), "releases/"+dep1.Release; got != want {
			t.Errorf("%s: current -> %q, want %q", h.Name, got, want)
		}
		if v := e.onHost(h, "app/current/venv/bin/python", "-c", "import pdtestdep; print(pdtestdep.VERSION)"); v != "1.0" {
			t.Errorf("%s: venv imports pdtestdep %q, want 1.0", h.Name, v)
		}
		if target := fmt.Sprintf("target %s port %d", h.Addr, h.Port); !strings.Contains(e.env.JumpLog(), target) {
			t.Errorf("the jump host's log shows no connection forwarded to %s (%q)", h.Name, target)
		}
	}

	// The hosts file's own jump host, DEPLOY_SSH_JUMP unset.
	delete(e.vars, "DEPLOY_SSH_JUMP")
	var lines strings.Builder
	for _, h := range e.env.Hosts {
		fmt.Fprintf(&lines, "%s via %s   # behind the bastion\n", h.Name, jump.Name)
	}
	hostsFile := filepath.Join(t.TempDir(), "hosts.txt")
	if err := os.WriteFile(hostsFile, []byte(lines.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	e.vars["DEPLOY_HOSTS_FILE"] = hostsFile
	sha2 := e.commit("2.0", nil)
	dep2 := e.mustDeploy()
	if dep2.Commit != sha2 || dep2.Status != "succeeded" {
		t.Fatalf("deployment %+v, want commit %s", dep2, sha2)
	}
	for _, h := range e.env.Hosts {
		if v := e.onHost(h, "app/current/venv/bin/python", "-c", "import pdtestdep; print(pdtestdep.VERSION)"); v != "2.0" {
			t.Errorf("%s: venv imports pdtestdep %q, want 2.0", h.Name, v)
		}
	}

	// The jump host's key unknown: its own failure, with its fingerprint;
	// the hosts behind it are not tried.
	known, err := os.ReadFile(e.env.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	noJump := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(noJump, []byte(strings.ReplaceAll(string(known), jump.HostKeyLine+"\n", "")), 0o644); err != nil {
		t.Fatal(err)
	}
	e.vars["DEPLOY_KNOWN_HOSTS"] = noJump
	fp := fingerprint(t, jump.HostKeyLine)
	forwarded := strings.Count(e.env.JumpLog(), "server_request_direct_tcpip")
	r = e.pushdeploy("check")
	failLine := fmt.Sprintf("FAIL  %-28s %-11s ssh login %s@%s:%d: host key of [%s]:%d is unknown: it presents ssh-ed25519 %s",
		jump.Name, "jump", jump.User, jump.Addr, jump.Port, jump.Addr, jump.Port, fp)
	if r.code != 1 || !strings.Contains(r.stdout, failLine) {
		t.Errorf("check with the jump host's key unknown: exit %d, want 1 and\n%s\nin:\n%s%s", r.code, failLine, r.stdout, r.stderr)
	}
	for _, h := range e.env.Hosts {
		want := fmt.Sprintf("FAIL  %-28s %-11s not tried: its jump host %s failed", h.Name, "login", jump.Name)
		if !strings.Contains(r.stdout, want) {
			t.Errorf("check output lacks\n%s\nin:\n%s", want, r.stdout)
		}
	}
	r = e.pushdeploy("deploy")
	if r.code != 1 || !strings.Contains(r.stderr, "jump host: ssh login "+jump.User+"@") || !strings.Contains(r.stderr, fp) {
		t.Errorf("deploy with the jump host's key unknown: exit %d, want 1 naming the jump host and %s\n%s", r.code, fp, r.stderr)
	}
	if got := strings.Count(e.env.JumpLog(), "server_request_direct_tcpip"); got != forwarded {
		t.Errorf("the jump host forwarded %d connections with its key unknown, want none", got-forwarded)
	}
	for _, h := range e.env.Hosts {
		if got := releases(t, h); len(got) != 2 {
			t.Errorf("%s: releases %v, want the 2 deployed", h.Name, got)
		}
	}
}
