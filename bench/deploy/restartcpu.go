package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// restartRuns is how many times restartCPU runs the restart command.
const restartRuns = 10

// restartCPU is what one host's restart costs this machine's CPUs, in
// CPU-seconds: the machine's busy time over restartRuns runs of the
// restart command on the first host, one after another, divided by
// restartRuns. It runs as pushdeploy runs it (sh -c, in the host's current
// release, RELEASE_DIR set, as the host's user, SSH_CONNECTION naming the
// host's address, which the test app binds), but without SSH, whose cost
// is not the restart's. The pool's restarts alone then cost hosts ×
// restartCPU, which the bound of the batch table counts in wall time as if
// every host of a batch had cores of its own: on this machine they share
// the deployer's. Each run leaves the first host's app serving, as a
// restart does.
func (b *bench) restartCPU(ctx context.Context, env *testhosts.Env) (float64, error) {
	h := env.Hosts[0]
	root := h.Path("app") // DEPLOY_ROOT (directVars)
	target, err := os.Readlink(filepath.Join(root, "current"))
	if err != nil {
		return math.NaN(), fmt.Errorf("restart CPU: host %s: %w", h.User, err)
	}
	if !filepath.IsAbs(target) {
		target = filepath.Join(root, target)
	}
	uid, gid := h.IDs()
	if _, err := b.o.waitQuiet(ctx); err != nil {
		return math.NaN(), err
	}
	restart := env.RestartCmd(b.o.port)
	cpu0 := machineCPU()
	for i := range restartRuns {
		cmd := exec.CommandContext(ctx, "/bin/sh", "-c", restart)
		cmd.Dir = target
		cmd.Env = []string{
			"PATH=/usr/local/bin:/usr/bin:/bin",
			"HOME=" + h.Home,
			"USER=" + h.User,
			"RELEASE_DIR=" + target,
			"SSH_CONNECTION=127.0.0.1 1 " + h.Addr + " " + strconv.Itoa(h.Port),
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		if out, err := cmd.CombinedOutput(); err != nil {
			return math.NaN(), fmt.Errorf("restart CPU: host %s: run %d: %w: %s", h.User, i+1, err, strings.TrimSpace(tail(string(out))))
		}
	}
	return (machineCPU() - cpu0) / restartRuns, nil
}
