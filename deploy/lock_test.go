package deploy

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pushdeploy/pushdeploy/internal/deploytest"
)

// TestLockWaitsForAnEarlierDeploymentsCommand: a command that a vanished
// deployer left running holds the active file; the next deployment's lock
// waits for it, and gives up naming it when it outlasts the lock timeout.
func TestLockWaitsForAnEarlierDeploymentsCommand(t *testing.T) {
	r := newRig(t, 1)
	r.commit("flask")
	root := filepath.Join(r.dialer.homes["web1"], "app")
	r.must(os.MkdirAll(root, 0o755))
	endStraggler := deploytest.HoldLock(t, filepath.Join(root, activeFile), "-s")

	_, err := r.deploy()
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "a command an earlier deployment started is still running") {
		t.Fatalf("got %v, want ErrBusy naming the running command", err)
	}
	if r.current("web1") != "" || len(r.releases("web1")) != 0 {
		t.Errorf("the host was changed while an earlier command ran")
	}
	endStraggler()
	if _, err := r.deploy(); err != nil {
		t.Fatalf("deploy once the command ended: %v", err)
	}
}

// TestServerLeftRunningDoesNotHoldTheLock: the restart command starts a
// server that outlives it; the next deployment must not wait for it.
func TestServerLeftRunningDoesNotHoldTheLock(t *testing.T) {
	r := newRig(t, 1)
	pidFile := filepath.Join(r.dir, "server.pid")
	r.d.RestartCmd = "sleep 60 </dev/null >/dev/null 2>&1 & echo $! > " + Quote(pidFile)
	t.Cleanup(func() {
		if b, err := os.ReadFile(pidFile); err == nil {
			_ = exec.Command("kill", strings.TrimSpace(string(b))).Run()
		}
	})
	r.commit("flask")
	if _, err := r.deploy(); err != nil {
		t.Fatal(err)
	}
	r.commit("flask==2")
	if _, err := r.deploy(); err != nil {
		t.Fatalf("second deploy with the first one's server running: %v", err)
	}
}
