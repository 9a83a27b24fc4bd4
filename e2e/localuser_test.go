package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// snoopHook is a before-switch hook that tries to get at what the deployer
// holds, and writes what it got to $HOME/hook.report: the admin key file
// (%[1]s), the env file (%[2]s), the environment of the pushdeploy process
// it runs under, that process's SSH_AUTH_SOCK and variables.
const snoopHook = `#!/bin/sh
{
echo "uid $(id -u)"
cat -- '%[1]s' >/dev/null 2>&1 && echo "read admin key" || echo "no admin key"
cat -- '%[2]s' >/dev/null 2>&1 && echo "read env file" || echo "no env file"
p=$$
while [ "$p" -gt 1 ] && [ "$(cat "/proc/$p/comm" 2>/dev/null)" != pushdeploy ]; do
	p=$(sed -n 's/^PPid:[[:space:]]*//p' "/proc/$p/status")
done
[ "$p" -gt 1 ] && echo "deployer found" || echo "deployer not found"
cat "/proc/$p/environ" >/dev/null 2>&1 && echo "read deployer environ" || echo "no deployer environ"
echo "SSH_AUTH_SOCK ${SSH_AUTH_SOCK-unset}"
echo "deployer variables $(env | grep -c -e '^DEPLOY_' -e '^PD_DEPLOYER_ONLY=')"
} >"$HOME/hook.report"
`

// TestEndToEndLocalUser: local listed with an SSH host. Without
// DEPLOY_LOCAL_USER that is refused (exit 2) before anything runs: local's
// hooks would run as the deployer's user, which can read the admin key.
// With it, every command of local runs as that user: the deploy succeeds
// (the clone reaches the lent deploy key), the release is the user's, and a
// hook that tries to read the admin key, the env file, the deployer's
// /proc/PID/environ, its SSH_AUTH_SOCK and variables gets none of them.
func TestEndToEndLocalUser(t *testing.T) {
	e := newE2E(t, 1)
	u := testhosts.NewUser(t)
	hosts := filepath.Join(t.TempDir(), "hosts.txt")
	if err := os.WriteFile(hosts, []byte(e.env.Hosts[0].Name+"\nlocal\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.vars["DEPLOY_HOSTS_FILE"] = hosts
	// The deployer's own environment, which no command of local may see
	// (and a HOME of its own, so that a local that ran as the deployer
	// would write there).
	e.vars["HOME"] = t.TempDir()
	e.vars["SSH_AUTH_SOCK"] = filepath.Join(t.TempDir(), "deployer-agent.sock")
	e.vars["PD_DEPLOYER_ONLY"] = "deployer-environment"
	// The env file in a folder everyone may enter: only its mode keeps the
	// user out, as with the admin key.
	dir, err := os.MkdirTemp("", "pdenv-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	envFile := filepath.Join(dir, "deploy.env")
	writeEnvFile(t, envFile, "DEPLOY_API_TOKEN=s3cret-api-token-of-the-deployer\n")

	r := e.pushdeploy("check", "--env-file", envFile)
	if want := "lists local together with SSH hosts"; r.code != 2 || !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "DEPLOY_LOCAL_USER") {
		t.Fatalf("local with an SSH host, without DEPLOY_LOCAL_USER: exit %d, want 2 and %q naming DEPLOY_LOCAL_USER\n%s", r.code, want, r.stderr)
	}

	e.vars["DEPLOY_LOCAL_USER"] = u.Name
	sha := e.commit("1.0", map[string]string{".pushdeploy/before-switch": fmt.Sprintf(snoopHook, e.env.AdminKey, envFile)})
	if r = e.pushdeploy("check", "--env-file", envFile); r.code != 0 {
		t.Fatalf("check with DEPLOY_LOCAL_USER: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = e.pushdeploy("deploy", "--env-file", envFile)
	if r.code != 0 {
		t.Fatalf("deploy with DEPLOY_LOCAL_USER: exit %d\n%s", r.code, r.stderr)
	}
	report, err := os.ReadFile(filepath.Join(u.Home, "hook.report"))
	if err != nil {
		t.Fatalf("local's hook left no report in the user's home: %v", err)
	}
	want := strings.Join([]string{
		"uid " + strconv.Itoa(u.UID),
		"no admin key",
		"no env file",
		"deployer found",
		"no deployer environ",
		"SSH_AUTH_SOCK unset",
		"deployer variables 0",
	}, "\n") + "\n"
	if string(report) != want {
		t.Errorf("what local's hook got:\n%s\nwant:\n%s", report, want)
	}
	root := filepath.Join(u.Home, "app")
	rev, _ := os.ReadFile(filepath.Join(root, "current", "REVISION"))
	if strings.TrimSpace(string(rev)) != sha {
		t.Errorf("local: REVISION %q, want %s", rev, sha)
	}
	fi, err := os.Stat(filepath.Join(root, "current", "app.py"))
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != u.UID {
		t.Errorf("local's release belongs to uid %d, want the user's %d", st.Uid, u.UID)
	}
	if _, err := os.Stat(filepath.Join(u.Home, "restart.env")); err != nil {
		t.Errorf("the restart command did not run in the user's home: %v", err)
	}
}
