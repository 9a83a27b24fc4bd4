package testhosts

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
)

// clientArgs are the OpenSSH client options that trust KnownHosts and
// nothing else: no user configuration, no agent keys, no prompts.
func (e *Env) clientArgs(key string) []string {
	return []string{
		"-F", "/dev/null",
		"-i", key,
		"-o", "IdentitiesOnly=yes",
		"-o", "IdentityAgent=none",
		"-o", "UserKnownHostsFile=" + e.KnownHosts,
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "BatchMode=yes",
		"-o", "ConnectTimeout=10",
	}
}

// SSH returns an OpenSSH client command that runs args on h as h.User with
// the admin key, checking the host key against KnownHosts. Each argument is
// quoted for the remote shell, so use "sh", "-c", script for a pipeline.
// With no args it asks for a shell. The remote PATH is sshd's default,
// /usr/local/bin:/usr/bin:/bin:/usr/games, and the session starts in
// h.Home.
//
// With Options.Jump it goes through the jump host (as ssh -J, spelled out
// as a ProxyCommand so that the jump login uses the same key and
// known_hosts).
func (e *Env) SSH(ctx context.Context, h *Host, args ...string) *exec.Cmd {
	a := e.clientArgs(e.AdminKey)
	if e.Jump != nil && h != e.Jump {
		proxy := append([]string{"ssh"}, e.clientArgs(e.AdminKey)...)
		proxy = append(proxy, "-p", strconv.Itoa(e.Jump.Port), "-W", "%h:%p", e.Jump.User+"@"+e.Jump.Addr)
		for i, s := range proxy {
			proxy[i] = shellQuote(s)
		}
		a = append(a, "-o", "ProxyCommand="+strings.Join(proxy, " "))
	}
	a = append(a, "-p", strconv.Itoa(h.Port), h.User+"@"+h.Addr)
	if len(args) > 0 {
		quoted := make([]string, len(args))
		for i, s := range args {
			quoted[i] = shellQuote(s)
		}
		a = append(a, "--", strings.Join(quoted, " "))
	}
	return exec.CommandContext(ctx, "ssh", a...)
}

// GitSSHCommand returns a GIT_SSH_COMMAND value that fetches from RepoURL
// with the deploy key and checks the git server's host key against
// KnownHosts.
func (e *Env) GitSSHCommand() string {
	a := e.clientArgs(e.GitKey)
	quoted := make([]string, len(a))
	for i, s := range a {
		quoted[i] = shellQuote(s)
	}
	return "ssh " + strings.Join(quoted, " ")
}
