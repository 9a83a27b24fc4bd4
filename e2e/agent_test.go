package e2e

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// agentProbe records, on a host, whether an agent socket is there and the
// keys it offers.
const agentProbe = `{ echo "SOCK=${SSH_AUTH_SOCK-unset}"; ssh-add -l; echo "exit=$?"; } >> "$HOME/%s" 2>&1`

// socketProbe also asks every agent socket sshd made for the host user
// (the hook runs in the same command as the fetch, after it, and a hook
// that looks for the socket finds it): none may offer a key any more.
const socketProbe = `for s in /tmp/ssh-*/agent.*; do [ -S "$s" ] || continue; { echo "found $s"; SSH_AUTH_SOCK=$s ssh-add -l; echo "exit=$?"; } >> "$HOME/%s" 2>&1; done`

func keyFingerprint(t *testing.T, pub string) string {
	t.Helper()
	out, err := exec.Command("ssh-keygen", "-lf", pub).Output()
	if f := strings.Fields(string(out)); err != nil || len(f) < 2 {
		t.Fatalf("ssh-keygen -lf %s: %v %q", pub, err, out)
	}
	return strings.Fields(string(out))[1]
}

// TestEndToEndAgentLentOnlyForFetch shows what a host's commands can get
// from the forwarded agent: during the fetch, exactly the deploy key (ssh,
// run by git, lists the agent first through a Match exec line of the host
// user's ssh config); in a repository hook and the restart command,
// nothing; and in push mode no agent is forwarded at all.
func TestEndToEndAgentLentOnlyForFetch(t *testing.T) {
	e := newE2E(t, 1)
	h := e.env.Hosts[0]
	deployFP, adminFP := keyFingerprint(t, e.env.GitKey+".pub"), keyFingerprint(t, e.env.AdminKey+".pub")
	e.onHost(h, "sh", "-c", `printf '%s\n' "$1" > agent-probe.sh && printf '%s\n' 'Match exec "sh $HOME/agent-probe.sh; true"' > .ssh/config && chmod 600 .ssh/config`,
		"sh", strings.ReplaceAll(agentProbe, "%s", "agent-fetch.txt"))
	e.vars["DEPLOY_RESTART_CMD"] = strings.ReplaceAll(agentProbe, "%s", "agent-restart.txt")
	hook := "#!/bin/sh\n" + strings.ReplaceAll(agentProbe, "%s", "agent-hook.txt") + "\n" + strings.ReplaceAll(socketProbe, "%s", "agent-hook.txt") + "\n"
	e.commit("1.0", map[string]string{".pushdeploy/before-switch": hook})
	e.mustDeploy()

	read := func(name string) string {
		t.Helper()
		b, err := os.ReadFile(h.Path(name))
		if err != nil {
			t.Fatalf("%s: %v (the probe did not run)", name, err)
		}
		return string(b)
	}
	fetch := read("agent-fetch.txt")
	if n := strings.Count(fetch, "SHA256:"); n < 1 || strings.Count(fetch, deployFP) != n || strings.Contains(fetch, adminFP) || strings.Contains(fetch, "SOCK=unset") {
		t.Errorf("during the fetch the agent offered:\n%s\nwant only the deploy key %s (never the admin key %s)", fetch, deployFP, adminFP)
	}
	for _, name := range []string{"agent-hook.txt", "agent-restart.txt"} {
		got := read(name)
		if strings.Contains(got, "SHA256:") || strings.Contains(got, "exit=0") {
			t.Errorf("%s: the agent offered keys outside the fetch:\n%s", name, got)
		}
	}
	t.Logf("fetch:\n%shook:\n%s", fetch, read("agent-hook.txt"))

	// Push mode: the deployer streams the release; no agent forwarding is
	// asked for, so no command on the host has a socket at all.
	for _, name := range []string{"agent-fetch.txt", "agent-hook.txt", "agent-restart.txt"} {
		if err := os.Remove(h.Path(name)); err != nil {
			t.Fatal(err)
		}
	}
	e.vars["DEPLOY_FETCH"] = "push"
	e.commit("1.0", map[string]string{"NEWS": "push mode\n"})
	e.mustDeploy()
	for _, name := range []string{"agent-hook.txt", "agent-restart.txt"} {
		if got := read(name); !strings.Contains(got, "SOCK=unset") || strings.Contains(got, "SHA256:") {
			t.Errorf("push mode, %s: %s, want no agent socket", name, got)
		}
	}
	if _, err := os.Stat(h.Path("agent-fetch.txt")); !os.IsNotExist(err) {
		t.Errorf("push mode: the host ran ssh (%v)", err)
	}
}
