package localrun

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// secretFile writes a file only root can read, as the admin key or
// deploy.env would be, in a folder everyone can traverse.
func secretFile(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pdsecret-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "id_admin")
	if err := os.WriteFile(p, []byte("ADMIN KEY\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestUserDropsPrivileges: with User, a command runs as that user, with
// its groups only, no capability, in its home, with an environment of its
// own: it cannot read the deployer's key file or its process environment,
// and sees neither the deployer's SSH_AUTH_SOCK nor its variables.
func TestUserDropsPrivileges(t *testing.T) {
	u := testhosts.NewUser(t)
	key := secretFile(t)
	t.Setenv("SSH_AUTH_SOCK", "/run/deployer/agent.sock")
	t.Setenv("DEPLOY_API_TOKEN", "s3cret-token")
	t.Setenv("PD_DEPLOYER_ONLY", "deployer-env")
	c := dial(t, &Runner{User: u.Name})
	script := `id -u; id -g; id -G; pwd -P
env | sort | tr '\n' ' '; echo
cat -- "$1" >/dev/null 2>&1 && echo "read key" || echo "no key"
cat -- "/proc/$2/environ" >/dev/null 2>&1 && echo "read environ" || echo "no environ"
grep '^CapEff:' /proc/self/status`
	out, stderr, err := run(t, c, deploy.Command{Args: []string{"sh", "-c", script, "sh", key, strconv.Itoa(os.Getpid())}})
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 8 {
		t.Fatalf("output:\n%s", out)
	}
	home, _ := filepath.EvalSymlinks(u.Home)
	for i, want := range []string{strconv.Itoa(u.UID), strconv.Itoa(u.GID), strconv.Itoa(u.GID), home} {
		if lines[i] != want {
			t.Errorf("line %d: %q, want %q (uid, gid, groups, folder)", i+1, lines[i], want)
		}
	}
	env := lines[4]
	var wrong []string
	for _, want := range []string{"HOME=" + u.Home + " ", "USER=" + u.Name + " ", "LOGNAME=" + u.Name + " ", "PATH=" + userPath + " "} {
		if !strings.Contains(env, want) {
			wrong = append(wrong, "lacks "+strings.TrimSpace(want))
		}
	}
	for _, bad := range []string{"SSH_AUTH_SOCK", "DEPLOY_", "s3cret", "PD_DEPLOYER_ONLY"} {
		if strings.Contains(env, bad) {
			wrong = append(wrong, "has the deployer's "+bad)
		}
	}
	if len(wrong) > 0 {
		t.Errorf("the environment %s:\n%s", strings.Join(wrong, ", "), env)
	}
	if lines[5] != "no key" {
		t.Errorf("reading the key file (mode 0600, root's): %q, want it refused", lines[5])
	}
	if lines[6] != "no environ" {
		t.Errorf("reading /proc/%d/environ (the deployer's): %q, want it refused", os.Getpid(), lines[6])
	}
	if f := strings.Fields(lines[7]); len(f) != 2 || strings.Trim(f[1], "0") != "" {
		t.Errorf("capabilities %q, want none", lines[7])
	}
}

// TestUserDialRefusesRootAndUnknown: no drop to root, no unknown user.
func TestUserDialRefusesRootAndUnknown(t *testing.T) {
	for _, tt := range []struct{ user, want string }{
		{"root", "user root is root: commands would keep every privilege"},
		{"pd-no-such-user", "user pd-no-such-user: user: unknown user pd-no-such-user"},
	} {
		_, err := (&Runner{User: tt.user}).Dial(context.Background(), local)
		if err == nil || err.Error() != "local: "+tt.want {
			t.Errorf("Dial as %s: %v, want %q", tt.user, err, "local: "+tt.want)
		}
	}
}

// TestUserGetsTheLentAgent: the clone runs as the user, so the lent agent's
// socket (made by the deployer, in a private folder) is given to the user:
// the command reaches it, as that user.
func TestUserGetsTheLentAgent(t *testing.T) {
	u := testhosts.NewUser(t)
	t.Setenv("SSH_AUTH_SOCK", "/run/deployer/agent.sock")
	parent, err := os.MkdirTemp("", "pdlend-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	peers := make(chan int, 1)
	lend := func(ctx context.Context, _ string) (string, func(), error) {
		// As sshrun.Runner.ServeGitAgent: a socket in a new 0700 folder.
		private, err := os.MkdirTemp(parent, "agent-")
		if err != nil {
			return "", nil, err
		}
		sock := filepath.Join(private, "agent.sock")
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
		if err != nil {
			return "", nil, err
		}
		go func() {
			c, err := ln.AcceptUnix()
			if err != nil {
				return
			}
			defer c.Close()
			peers <- peerUID(c)
		}()
		return sock, func() { ln.Close() }, nil
	}
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	c := dial(t, &Runner{User: u.Name, Lend: lend})
	// ssh-add connects to the agent, then fails when the test's listener
	// closes the connection without answering.
	out, stderr, err := run(t, c, deploy.Command{ForwardAgent: true, Args: []string{"sh", "-c", `echo "$SSH_AUTH_SOCK"; ssh-add -l >/dev/null 2>&1; true`}})
	if err != nil || !strings.HasPrefix(out, parent+"/agent-") {
		t.Fatalf("SSH_AUTH_SOCK %q, %v (%s); want the lent socket", out, err, stderr)
	}
	select {
	case uid := <-peers:
		if uid != u.UID {
			t.Errorf("the agent was reached by uid %d, want the user's %d", uid, u.UID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the command never reached the lent agent")
	}
}

// peerUID is the uid of the process at the other end of c.
func peerUID(c *net.UnixConn) int {
	raw, err := c.SyscallConn()
	if err != nil {
		return -1
	}
	uid := -1
	_ = raw.Control(func(fd uintptr) {
		if cred, err := syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED); err == nil {
			uid = int(cred.Uid)
		}
	})
	return uid
}
