package e2e

// End-to-end fault tests: things that go wrong in production, done for
// real to real test hosts (an sshd killed mid-step, a host down, the git
// server down, a branch deleted or rewritten, a full disk, a failing
// restart, a health check that never answers, a deployer killed, two
// deployers at once). After each: every host on a complete release,
// nothing lost, a clear error naming host, step and the command's output.
//
// Faults covered elsewhere: an unknown or changed host key
// (TestEndToEndUnknownHostKeyIsRefusedBeforeAnyChange), a failing pip
// (TestEndToEndDeploy), a health check answering non-2xx until
// DEPLOY_HEALTH_TIMEOUT with real app servers (TestEndToEndHealthCheckRollsBack),
// a failing before-switch hook (TestEndToEndSharedHooksRetention), a
// rollback meeting a deploy's lock (TestEndToEndRollbackWaitsForADeploy),
// SIGTERM to serve mid-deploy (TestEndToEndServeSIGTERMMidDeploy).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// faultRestartCmd records each restart inside the root: "<commit> <id>".
const faultRestartCmd = `printf '%s %s\n' "$COMMIT" "$DEPLOYMENT_ID" >>"${CURRENT_DIR%/current}/restarts.log"`

// holdHook, as a release's before-switch hook, holds each host whose
// <root>/hold exists in its prepare phase (two minutes at most), after
// making <root>/hook-running.
const holdHook = "#!/bin/sh\nroot=${CURRENT_DIR%/current}\n[ -e \"$root/hold\" ] || exit 0\n: >\"$root/hook-running\"\ni=0\nwhile [ -e \"$root/hold\" ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done\n"

// running is a pushdeploy process started in the background.
type running struct {
	cmd  *exec.Cmd
	done chan result
}

// start runs pushdeploy in the background, like pushdeploy but without
// waiting.
func (e *e2e) start(args ...string) *running {
	e.t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = e.t.TempDir()
	cmd.Env = e.environ()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &syncWriter{w: &stderr}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	p := &running{cmd: cmd, done: make(chan result, 1)}
	go func() {
		err := cmd.Wait()
		r := result{stdout: stdout.String(), stderr: stderr.String()}
		if ee, ok := err.(*exec.ExitError); ok {
			r.code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				r.code = -1
			}
		}
		p.done <- r
	}()
	e.t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	})
	return p
}

// wait waits for the process, failing the test after a generous bound.
func (p *running) wait(t *testing.T) result {
	t.Helper()
	select {
	case r := <-p.done:
		return r
	case <-time.After(5 * time.Minute):
		_ = p.cmd.Process.Kill()
		t.Fatalf("pushdeploy %v did not end", p.cmd.Args[1:])
		return result{}
	}
}

// waitFor polls cond until it holds; it fails the test when p ends first
// or after a generous bound (only against hanging: nothing is timed).
func waitFor(t *testing.T, what string, p *running, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for !cond() {
		if p != nil {
			select {
			case r := <-p.done:
				p.done <- r
				t.Fatalf("waiting for %s: pushdeploy ended first: exit %d\n%s", what, r.code, r.stderr)
			default:
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: gave up", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// uidOf returns the uid of the host's user (the owner of its home).
func uidOf(t *testing.T, h *testhosts.Host) uint32 {
	t.Helper()
	fi, err := os.Stat(h.Home)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Uid
}

// procsOf lists the processes of uid (pid and command line, NULs as
// spaces), read from /proc.
func procsOf(uid uint32) map[int]string {
	out := map[int]string{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		fi, err := os.Stat("/proc/" + e.Name())
		if err != nil || fi.Sys().(*syscall.Stat_t).Uid != uid {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || len(cmdline) == 0 {
			continue
		}
		out[pid] = string(bytes.ReplaceAll(bytes.TrimRight(cmdline, "\x00"), []byte{0}, []byte{' '}))
	}
	return out
}

// lockFree says whether nobody holds the host's deploy lock, asked on the
// host itself.
func (e *e2e) lockFree(h *testhosts.Host) bool {
	out, err := e.env.SSH(context.Background(), h, "flock", "-n", "app/.pushdeploy.lock", "true").CombinedOutput()
	if err != nil && len(out) > 0 {
		e.t.Logf("%s: flock: %v: %s", h.Name, err, out)
	}
	return err == nil
}

// outsideRoot fingerprints a host user's home without the root folder
// "app", and lists the user's files in /tmp: what a deploy must not touch.
func outsideRoot(t *testing.T, h *testhosts.Host) string {
	t.Helper()
	state, err := testhosts.TreeState(h.Home)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, l := range strings.Split(state, "\n") {
		if l != "" && !strings.HasPrefix(l, "app ") && !strings.HasPrefix(l, "app/") {
			kept = append(kept, l)
		}
	}
	uid := uidOf(t, h)
	tmp, _ := os.ReadDir(os.TempDir())
	for _, e := range tmp {
		if fi, err := os.Lstat(filepath.Join(os.TempDir(), e.Name())); err == nil && fi.Sys().(*syscall.Stat_t).Uid == uid {
			kept = append(kept, "/tmp/"+e.Name())
		}
	}
	return strings.Join(kept, "\n")
}

// faults is the hosts of one fault test of TestEndToEndFaults.
type faults struct {
	*e2e
	outside map[string]string // outsideRoot of each host at the start
	// resize sets the free space of host 3's root, when newFaults made it
	// a small filesystem of its own (see smallRoot).
	resize func(kib int64)
}

// newFaults brings up three hosts whose restart command is
// faultRestartCmd, deploys a first commit (A) to them, checks that they
// are sound and returns them with A. With small, host 3's root is a small
// filesystem of its own, whose free space f.resize sets.
func newFaults(t *testing.T, small bool) (f *faults, shaA string) {
	t.Helper()
	f = &faults{e2e: newE2E(t, 3), outside: map[string]string{}}
	f.vars["DEPLOY_RESTART_CMD"] = faultRestartCmd
	if small {
		f.resize = smallRoot(t, f.env.Hosts[2])
	}
	shaA = f.commit("1.0", nil)
	// The hosts prepare at once: this deploy is not what is tested.
	f.vars["DEPLOY_PARALLEL"] = "3"
	f.mustDeploy()
	delete(f.vars, "DEPLOY_PARALLEL")
	for _, h := range f.env.Hosts {
		f.outside[h.Name] = outsideRoot(t, h)
	}
	f.sound(t, f.every(shaA))
	return f, shaA
}

// hostState is what a host looks like from outside: current and its commit.
type hostState struct{ current, commit string }

func (f *faults) states() map[string]hostState {
	m := map[string]hostState{}
	for _, h := range f.env.Hosts {
		rev, _ := os.ReadFile(h.Path("app/current/REVISION"))
		m[h.Name] = hostState{current(h), strings.TrimSpace(string(rev))}
	}
	return m
}

// roots fingerprints every host's root folder.
func (f *faults) roots(t *testing.T) map[string]string {
	m := map[string]string{}
	for _, h := range f.env.Hosts {
		m[h.Name] = rootFingerprint(t, h)
	}
	return m
}

// unchanged checks that no host's root changed since before.
func (f *faults) unchanged(t *testing.T, before map[string]string) {
	t.Helper()
	for _, h := range f.env.Hosts {
		if after := rootFingerprint(t, h); after != before[h.Name] {
			t.Errorf("%s: the root changed although the deploy failed before touching it:\nbefore:\n%s\nafter:\n%s", h.Name, before[h.Name], after)
		}
	}
}

// sound checks what must hold on every host after any fault: current
// points at a complete release (REVISION, a venv that runs) that the app
// was last restarted with, every release is complete (no half release),
// every shared venv is complete, no temporary link, the lock is free, no
// process of the host user is left, and nothing outside the root changed.
// want, when not nil, gives the expected commit per host.
func (f *faults) sound(t *testing.T, want map[string]string) {
	t.Helper()
	for _, h := range f.env.Hosts {
		cur := current(h)
		rev, err := os.ReadFile(h.Path("app/current/REVISION"))
		commit := strings.TrimSpace(string(rev))
		if cur == "" || err != nil || len(commit) != 40 {
			t.Errorf("%s: current -> %q is not a complete release (REVISION: %v)", h.Name, cur, err)
			continue
		}
		if w, ok := want[h.Name]; ok && w != commit {
			t.Errorf("%s: current is %s (%s), want commit %s", h.Name, cur, commit, w)
		}
		if out, err := f.env.SSH(context.Background(), h, "app/current/venv/bin/python", "-c", "import pdtestdep").CombinedOutput(); err != nil {
			t.Errorf("%s: the current release's venv does not work: %v\n%s", h.Name, err, out)
		}
		restarts, _ := os.ReadFile(h.Path("app/restarts.log"))
		if f := strings.Fields(lastLine(string(restarts))); len(f) != 2 || f[0] != commit {
			t.Errorf("%s: the app was last restarted with %q, but current is %s", h.Name, f, commit)
		}
		for _, r := range releases(t, h) {
			if !exists(h.Path("app/releases/" + r + "/REVISION")) {
				t.Errorf("%s: half release %s (no REVISION) left behind", h.Name, r)
			}
		}
		venvs, _ := os.ReadDir(h.Path("app/venvs"))
		for _, v := range venvs {
			if !exists(h.Path("app/venvs/" + v.Name() + "/.pushdeploy-complete")) {
				t.Errorf("%s: incomplete venv %s left behind", h.Name, v.Name())
			}
		}
		if tmp, _ := filepath.Glob(h.Path("app/.current.tmp-*")); len(tmp) > 0 {
			t.Errorf("%s: temporary links left behind: %v", h.Name, tmp)
		}
		if !f.lockFree(h) {
			t.Errorf("%s: the deploy lock is still held", h.Name)
		}
		// The sshd sessions of the checks above take a moment to end, and
		// an ending session's sshd can show as the user's for an instant
		// after none did (seen: "sshd: USER [priv]"): judge by the reading
		// that found no process, or by the last one at the deadline.
		uid, deadline := uidOf(t, h), time.Now().Add(30*time.Second)
		procs := procsOf(uid)
		for len(procs) > 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			procs = procsOf(uid)
		}
		if len(procs) > 0 {
			t.Errorf("%s: processes left on the host: %v", h.Name, procs)
		}
		if got := outsideRoot(t, h); got != f.outside[h.Name] {
			t.Errorf("%s: something outside the root changed:\nbefore:\n%s\nafter:\n%s", h.Name, f.outside[h.Name], got)
		}
	}
}

// failed checks a failed deploy's exit status and that its error output
// holds every one of wants.
func failed(t *testing.T, r result, code int, wants ...string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, code, r.stdout, r.stderr)
	}
	for _, w := range wants {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("the error lacks %q:\n%s", w, r.stderr)
		}
	}
}

// noNewRelease checks that no host got a release folder or a switch since
// before, judged by current and the list of releases.
func (f *faults) noNewRelease(t *testing.T, before map[string]hostState, rels map[string][]string) {
	t.Helper()
	after := f.states()
	for _, h := range f.env.Hosts {
		if after[h.Name] != before[h.Name] {
			t.Errorf("%s: switched by a deployment that failed while preparing: %+v, was %+v", h.Name, after[h.Name], before[h.Name])
		}
		if got := strings.Join(releases(t, h), " "); got != strings.Join(rels[h.Name], " ") {
			t.Errorf("%s: releases %s, want %s", h.Name, got, strings.Join(rels[h.Name], " "))
		}
	}
}

func (f *faults) releaseLists(t *testing.T) map[string][]string {
	m := map[string][]string{}
	for _, h := range f.env.Hosts {
		m[h.Name] = releases(t, h)
	}
	return m
}

// every returns a want map with the same commit for every host.
func (f *faults) every(sha string) map[string]string {
	m := map[string]string{}
	for _, h := range f.env.Hosts {
		m[h.Name] = sha
	}
	return m
}

// smallRoot mounts a tmpfs owned by the host user at the host's root
// folder, and returns a function that sets its size in KiB (never below
// what it holds: the kernel refuses that).
func smallRoot(t *testing.T, h *testhosts.Host) func(kib int64) {
	t.Helper()
	mnt := h.Path("app")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(h.Home)
	st := fi.Sys().(*syscall.Stat_t)
	opts := fmt.Sprintf("size=256m,mode=0755,uid=%d,gid=%d", st.Uid, st.Gid)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", opts, "pdfaults", mnt).CombinedOutput(); err != nil {
		testhosts.SkipOrFail(t, fmt.Sprintf("cannot mount a tmpfs here (a disk-full host needs one): %v: %s", err, out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Logf("umount %s: %v: %s; detaching it", mnt, err, out)
			_ = exec.Command("umount", "-l", mnt).Run()
		}
	})
	return func(kib int64) {
		t.Helper()
		var s syscall.Statfs_t
		if err := syscall.Statfs(mnt, &s); err != nil {
			t.Fatal(err)
		}
		used := int64(s.Blocks-s.Bfree) * s.Bsize / 1024
		size := used + kib
		if out, err := exec.Command("mount", "-o", "remount,size="+strconv.FormatInt(size, 10)+"k", mnt).CombinedOutput(); err != nil {
			t.Fatalf("resize tmpfs: %v: %s", err, out)
		}
		t.Logf("%s: root is a tmpfs of %d KiB, %d KiB free", h.Name, size, kib)
	}
}

// crashLeftovers removes what a host that went down mid-step (its sshd
// and every session killed) leaves in /tmp, after checking that it is
// only that: the git server's host key file of a fetch (gitScript), the
// prepare command's folder for its input (phaseScript: a fifo and flags)
// and sshd's forwarded agent folder. A real host's reboot clears them.
func (f *faults) crashLeftovers(t *testing.T, h *testhosts.Host) {
	t.Helper()
	uid := uidOf(t, h)
	entries, _ := os.ReadDir(os.TempDir())
	for _, e := range entries {
		p := filepath.Join(os.TempDir(), e.Name())
		fi, err := os.Lstat(p)
		if err != nil || fi.Sys().(*syscall.Stat_t).Uid != uid || strings.Contains(f.outside[h.Name], "/tmp/"+e.Name()) {
			continue
		}
		if !strings.HasPrefix(e.Name(), "pushdeploy-known_hosts.") && !strings.HasPrefix(e.Name(), "pushdeploy-phase.") && !strings.HasPrefix(e.Name(), "ssh-") {
			t.Errorf("%s: unexpected leftover %s", h.Name, p)
			continue
		}
		t.Logf("%s: left by the crash: %s", h.Name, p)
		_ = os.RemoveAll(p)
	}
}

// TestEndToEndFaults runs each fault against three hosts of its own, on
// which commit A is deployed first: each subtest runs alone with -run.
func TestEndToEndFaults(t *testing.T) {
	t.Run("host down at the start", func(t *testing.T) {
		f, shaA := newFaults(t, false)
		e, h2 := f.e2e, f.env.Hosts[1]
		e.commit("1.0", map[string]string{"NEWS": "down\n"})
		before := f.roots(t)
		if err := h2.Stop(); err != nil {
			t.Fatal(err)
		}
		r := e.pushdeploy("deploy")
		failed(t, r, 1, "host "+h2.Name+": connect:", "connection refused")
		f.unchanged(t, before)
		c := e.pushdeploy("check")
		if c.code != 1 || !strings.Contains(c.stdout, "FAIL") || !strings.Contains(c.stdout+c.stderr, h2.Name) || !strings.Contains(c.stdout, "connection refused") {
			t.Errorf("check with host 2 down: exit %d, want 1 naming it\n%s%s", c.code, c.stdout, c.stderr)
		}
		if err := h2.Restart(context.Background()); err != nil {
			t.Fatal(err)
		}
		f.unchanged(t, before)
		f.sound(t, f.every(shaA))
	})

	t.Run("git server down", func(t *testing.T) {
		f, shaA := newFaults(t, false)
		e := f.e2e
		before := f.roots(t)
		if err := e.env.Git.Stop(); err != nil {
			t.Fatal(err)
		}
		r := e.pushdeploy("deploy")
		failed(t, r, 1, "resolve", e.env.Git.Addr, "connection refused")
		c := e.pushdeploy("check")
		if c.code != 1 || !strings.Contains(c.stdout, "FAIL") || !strings.Contains(c.stdout, "connection refused") {
			t.Errorf("check with the git server down: exit %d, want 1\n%s%s", c.code, c.stdout, c.stderr)
		}
		if err := e.env.Git.Restart(context.Background()); err != nil {
			t.Fatal(err)
		}
		f.unchanged(t, before)
		f.sound(t, f.every(shaA))
	})

	t.Run("branch deleted", func(t *testing.T) {
		f, shaA := newFaults(t, false)
		e := f.e2e
		before := f.roots(t)
		if err := e.env.DeleteBranch(context.Background()); err != nil {
			t.Fatal(err)
		}
		r := e.pushdeploy("deploy")
		failed(t, r, 1, `branch "release" not found`)
		f.unchanged(t, before)
		f.sound(t, f.every(shaA))
	})

	t.Run("commit force-pushed away", func(t *testing.T) {
		f, shaA := newFaults(t, false)
		e := f.e2e
		shaB := e.commit("1.0", map[string]string{"NEWS": "B\n"}) // pushes the branch again, too
		gone := e.commit("1.0", map[string]string{"NEWS": "gone\n"})
		if err := e.env.Rewind(context.Background(), shaB); err != nil {
			t.Fatal(err)
		}
		before := f.roots(t)
		r := e.pushdeploy("deploy", "--commit", gone)
		failed(t, r, 2, gone, "is not on branch release")
		f.unchanged(t, before)
		f.sound(t, f.every(shaA))
	})

	t.Run("sshd of host 2 killed mid-fetch", func(t *testing.T) {
		f, _ := newFaults(t, false)
		e, h2, h3 := f.e2e, f.env.Hosts[1], f.env.Hosts[2]
		// The mirror's reference-transaction hook runs inside git fetch:
		// it holds the fetch there until host 2 is gone.
		mark := h2.Path("app/.repo/fetching")
		hook := h2.Path("app/.repo/hooks/reference-transaction")
		script := "#!/bin/sh\n: >" + mark + "\nsleep 120\n"
		if err := os.WriteFile(hook, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		sha := e.commit("1.0", map[string]string{"NEWS": "fetch\n"})
		states, rels := f.states(), f.releaseLists(t)
		p := e.start("deploy")
		waitFor(t, "host 2 to fetch", p, func() bool { return exists(mark) })
		if err := h2.Stop(); err != nil {
			t.Fatal(err)
		}
		r := p.wait(t)
		failed(t, r, 1, "host "+h2.Name+": fetch:", "connection lost")
		if strings.Contains(r.stderr, "host "+h3.Name) {
			t.Errorf("host 3 was started although host 2 failed:\n%s", r.stderr)
		}
		_ = os.Remove(hook)
		_ = os.Remove(mark)
		f.crashLeftovers(t, h2)
		if err := h2.Restart(context.Background()); err != nil {
			t.Fatal(err)
		}
		rels[h2.Name] = releases(t, h2) // host 2 could not clean up
		f.noNewRelease(t, states, rels)
		if !e.lockFree(h2) {
			t.Errorf("host 2's lock is held after its sshd died")
		}
		// The lock is free: the next deploy does not wait for it.
		e.mustDeploy()
		f.sound(t, f.every(sha))
	})

	t.Run("sshd of host 2 killed mid-pip", func(t *testing.T) {
		f, _ := newFaults(t, false)
		e, h2 := f.e2e, f.env.Hosts[1]
		sha := e.commit("2.0", nil) // new requirements: a new venv, pip runs
		states, rels := f.states(), f.releaseLists(t)
		uid := uidOf(t, h2)
		p := e.start("deploy")
		var pip int
		waitFor(t, "pip on host 2", p, func() bool {
			for pid, cmd := range procsOf(uid) {
				// pip itself: the host's prepare command carries
				// pip.sh's text (lines of it) among its parameters.
				if strings.Contains(cmd, "-m pip install") && !strings.Contains(cmd, "\n") {
					pip = pid
					return true
				}
			}
			return false
		})
		// Frozen, so that it is still mid-install when the host goes down.
		_ = syscall.Kill(pip, syscall.SIGSTOP)
		if err := h2.Stop(); err != nil {
			t.Fatal(err)
		}
		r := p.wait(t)
		failed(t, r, 1, "host "+h2.Name+": pip:", "connection lost")
		f.crashLeftovers(t, h2)
		if err := h2.Restart(context.Background()); err != nil {
			t.Fatal(err)
		}
		half := releases(t, h2)
		rels[h2.Name] = half
		f.noNewRelease(t, states, rels)
		if !e.lockFree(h2) {
			t.Errorf("host 2's lock is held after its sshd died")
		}
		e.vars["DEPLOY_LOCK_TIMEOUT"] = "3s"
		e.mustDeploy()
		f.sound(t, f.every(sha))
		if len(half) == len(releases(t, h2)) {
			t.Logf("host 2 releases after the kill %v, now %v", half, releases(t, h2))
		}
	})

	t.Run("disk full during the fetch", func(t *testing.T) {
		f, _ := newFaults(t, true)
		e, h3 := f.e2e, f.env.Hosts[2]
		base := e.commit("2.0", map[string]string{"NEWS": "before big\n"})
		e.mustDeploy()
		// 3 MiB that do not compress, with 1 MiB free on host 3.
		big := make([]byte, 3<<20)
		rng := rand.NewChaCha8([32]byte{1})
		_, _ = rng.Read(big)
		e.commit("2.0", map[string]string{"big.bin": string(big)})
		states, rels := f.states(), f.releaseLists(t)
		f.resize(1024)
		r := e.pushdeploy("deploy")
		failed(t, r, 1, "host "+h3.Name+": fetch:", "No space left on device")
		f.noNewRelease(t, states, rels)
		f.resize(256 << 10)
		if err := e.env.Rewind(context.Background(), base); err != nil {
			t.Fatal(err)
		}
		f.sound(t, f.every(base))
	})

	t.Run("disk full during the venv", func(t *testing.T) {
		f, _ := newFaults(t, true)
		e, h3 := f.e2e, f.env.Hosts[2]
		// Other requirements: a new venv; 2 MiB free is too little for it
		// when the host's compiled copy of pip must be built first (a
		// venv linked to an existing copy needs next to no space).
		files := e.env.AppFiles("1.0")
		sha := e.commit("1.0", map[string]string{"requirements.txt": files["requirements.txt"] + "# disk full\n"})
		e.onHost(h3, "rm", "-rf", "app/pip")
		states, rels := f.states(), f.releaseLists(t)
		f.resize(2048)
		r := e.pushdeploy("deploy")
		// python -m venv keeps ensurepip's output to itself; the step
		// shows what the quick bootstrap before it said, and df.
		failed(t, r, 1, "host "+h3.Name+": venv: exit status 1", "No space left on device")
		f.noNewRelease(t, states, rels)
		f.resize(256 << 10)
		e.mustDeploy()
		f.sound(t, f.every(sha))
	})

	t.Run("restart fails on host 2", func(t *testing.T) {
		f, _ := newFaults(t, false)
		e, h1, h2, h3 := f.e2e, f.env.Hosts[0], f.env.Hosts[1], f.env.Hosts[2]
		old := f.states()[h1.Name].commit
		sha := e.commit("1.0", map[string]string{"NEWS": "restart\n"})
		e.vars["DEPLOY_RESTART_CMD"] = `if [ "$COMMIT" = ` + sha + ` ] && [ "$(id -un)" = ` + h2.User + ` ]; then echo "app: address already in use" >&2; exit 3; fi; ` + faultRestartCmd
		r := e.pushdeploy("deploy")
		failed(t, r, 1, "host "+h2.Name+": restart: exit status 3", "app: address already in use")
		// Host 1 keeps the new release (DEPLOY_ROLLBACK_ON_FAILURE=host);
		// host 2 goes back and is restarted there; host 3 goes back
		// before its restart.
		f.sound(t, map[string]string{h1.Name: sha, h2.Name: old, h3.Name: old})
		for _, h := range []*testhosts.Host{h2, h3} {
			if log := e.onHost(h, "cat", "app/revisions.log"); !strings.Contains(lastLine(log), " rollback ") {
				t.Errorf("%s: revisions.log does not end with the rollback:\n%s", h.Name, log)
			}
		}
	})

	t.Run("health check times out", func(t *testing.T) {
		f, _ := newFaults(t, false)
		e, h1 := f.e2e, f.env.Hosts[0]
		// A health URL that accepts connections and never answers.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			var conns []net.Conn
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				conns = append(conns, c)
			}
		}()
		before := f.states()
		e.commit("1.0", map[string]string{"NEWS": "health\n"})
		e.vars["DEPLOY_HEALTH_URL"] = "http://" + ln.Addr().String() + "/health"
		e.vars["DEPLOY_HEALTH_TIMEOUT"] = "3s"
		r := e.pushdeploy("deploy")
		failed(t, r, 1, "host "+h1.Name+": health:", ln.Addr().String())
		want := map[string]string{}
		for name, s := range before {
			want[name] = s.commit
		}
		f.sound(t, want)
	})

	t.Run("two deployers at once", func(t *testing.T) {
		for _, parallel := range []string{"1", "3"} {
			t.Run("parallel "+parallel, func(t *testing.T) {
				f, _ := newFaults(t, false)
				e := f.e2e
				older := e.commit("2.0", map[string]string{"NEWS": "older\n"})
				tip := e.commit("2.0", map[string]string{"NEWS": "tip\n"})
				e.vars["DEPLOY_PARALLEL"] = parallel
				e.vars["DEPLOY_LOCK_TIMEOUT"] = "60s"
				logs := map[string]int{}
				for _, h := range e.env.Hosts {
					logs[h.Name] = strings.Count(e.onHost(h, "cat", "app/revisions.log"), "\n") + 1
				}
				a := e.start("deploy", "--json")
				b := e.start("deploy", "--json", "--commit", older)
				ra, rb := a.wait(t), b.wait(t)
				if ra.code != 0 || rb.code != 0 {
					t.Fatalf("two deploys at once: exits %d and %d\n%s\n%s", ra.code, rb.code, ra.stderr, rb.stderr)
				}
				var da, db deploymentJSON
				_ = json.Unmarshal([]byte(ra.stdout), &da)
				_ = json.Unmarshal([]byte(rb.stdout), &db)
				// One went first on every host, the other after it.
				var last string
				for _, h := range e.env.Hosts {
					lines := strings.Split(e.onHost(h, "cat", "app/revisions.log"), "\n")
					if len(lines) != logs[h.Name]+2 {
						t.Errorf("%s: revisions.log has %d new lines, want 2:\n%s", h.Name, len(lines)-logs[h.Name], strings.Join(lines, "\n"))
						continue
					}
					ids := strings.Fields(lines[len(lines)-2])[4] + " " + strings.Fields(lines[len(lines)-1])[4]
					if last == "" {
						last = ids
					}
					if ids != last || (ids != da.ID+" "+db.ID && ids != db.ID+" "+da.ID) {
						t.Errorf("%s: deployments in the order %s, want %s or %s on every host", h.Name, ids, da.ID+" "+db.ID, db.ID+" "+da.ID)
					}
				}
				want := tip
				if strings.HasPrefix(last, da.ID) {
					want = older
				}
				f.sound(t, f.every(want))
			})
		}
	})

	t.Run("deploy killed mid-deploy", func(t *testing.T) {
		f, _ := newFaults(t, false)
		e, h1, h2 := f.e2e, f.env.Hosts[0], f.env.Hosts[1]
		mark, hold := h2.Path("app/hook-running"), h2.Path("app/hold")
		sha := e.commit("1.0", map[string]string{".pushdeploy/before-switch": holdHook, "NEWS": "killed\n"})
		if err := os.WriteFile(hold, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		states, rels := f.states(), f.releaseLists(t)
		p := e.start("deploy")
		waitFor(t, "host 2's before-switch hook", p, func() bool { return exists(mark) })
		if err := p.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		if r := p.wait(t); r.code != -1 {
			t.Fatalf("deploy: exit %d, want killed", r.code)
		}
		// The lock holders die with the connection.
		for _, h := range []*testhosts.Host{h1, h2} {
			waitFor(t, h.Name+"'s lock to be freed", nil, func() bool { return e.lockFree(h) })
		}
		// The hook itself is not killed: it runs on until it ends
		// (DEPLOY_STEP_TIMEOUT at most), in a release the next deploy
		// removes. Until it ends, the next deployment waits for it rather
		// than work beside it (two migrations at once).
		t.Logf("host 2's processes once its lock was free: %v", procsOf(uidOf(t, h2)))
		e.vars["DEPLOY_LOCK_TIMEOUT"] = "3s"
		r := e.pushdeploy("deploy")
		failed(t, r, 1, "host "+h2.Name+": lock: host busy", "a command an earlier deployment started is still running")
		_ = os.Remove(hold)
		_ = os.Remove(mark)
		states2 := f.states()
		for _, h := range e.env.Hosts {
			if states2[h.Name] != states[h.Name] {
				t.Errorf("%s: switched by a deploy killed while preparing", h.Name)
			}
		}
		half := f.releaseLists(t)
		if len(half[h1.Name]) != len(rels[h1.Name])+1 {
			t.Logf("host 1's releases after the kill: %v (before: %v)", half[h1.Name], rels[h1.Name])
		}
		// A host that went down between the temporary link and its
		// rename leaves such a link: the next deploy removes it too.
		if err := os.Symlink("releases/"+strings.TrimPrefix(states[h1.Name].current, "releases/"), h1.Path("app/.current.tmp-dead")); err != nil {
			t.Fatal(err)
		}
		e.mustDeploy()
		f.sound(t, f.every(sha))
	})

	t.Run("serve: commits force-pushed away between request and deploy", func(t *testing.T) {
		f, _ := newFaults(t, false)
		e, h2 := f.e2e, f.env.Hosts[1]
		s := e.serve()
		mark, hold := h2.Path("app/hook-running"), h2.Path("app/hold")
		base := e.commit("1.0", map[string]string{".pushdeploy/before-switch": holdHook, "NEWS": "serve\n"})
		gone := e.commit("1.0", map[string]string{"NEWS": "gone again\n"})
		if err := os.WriteFile(hold, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		code, out := s.postDeploy(`{"commit":"` + base + `"}`)
		if code != http.StatusAccepted {
			t.Fatalf("POST /api/deploy: %d %v", code, out)
		}
		busy := out["deployment"].(string)
		waitFor(t, "host 2's before-switch hook", nil, func() bool { return exists(mark) })
		// Queued behind it: a push of gone, and an API deploy of gone.
		code, out = s.webhook("fp-1", bitbucketPush("release", gone), true)
		if code != http.StatusAccepted {
			t.Fatalf("push: %d %v", code, out)
		}
		pushed := out["deployment"].(string)
		code, out = s.postDeploy(`{"commit":"` + gone + `"}`)
		if code != http.StatusAccepted {
			t.Fatalf("POST /api/deploy of %s: %d %v", gone, code, out)
		}
		pinned := out["deployment"].(string)
		if err := e.env.Rewind(context.Background(), base); err != nil {
			t.Fatal(err)
		}
		// Asked for now, it is refused at once.
		if code, out := s.postDeploy(`{"commit":"` + gone + `"}`); code < 400 || code > 499 || !strings.Contains(fmt.Sprint(out), "not on branch") {
			t.Errorf("POST /api/deploy of a commit no longer on the branch: %d %v, want 4xx", code, out)
		}
		_ = os.Remove(hold)
		if d := s.waitDone(busy); d["status"] != "succeeded" {
			t.Fatalf("deployment %s: %v", busy, d)
		}
		_ = os.Remove(mark)
		// The push deploys the tip as it is when its turn comes; the
		// pinned commit fails before any host is touched.
		if d := s.waitDone(pushed); d["status"] != "succeeded" || d["commit"] != base {
			t.Errorf("the push's deployment: %v, want the tip %s deployed", d, base)
		}
		before := f.roots(t)
		d := s.waitDone(pinned)
		if d["status"] != "failed" || !strings.Contains(fmt.Sprint(d["error"]), "not on branch") {
			t.Errorf("the deployment of the force-pushed commit: %v, want failed naming it", d)
		}
		f.unchanged(t, before)
		f.sound(t, f.every(base))
		s.terminate()
	})

	t.Run("serve killed mid-deploy", func(t *testing.T) {
		f, _ := newFaults(t, false)
		e, h1, h2 := f.e2e, f.env.Hosts[0], f.env.Hosts[1]
		s := e.serve()
		mark, hold := h2.Path("app/hook-running"), h2.Path("app/hold")
		sha := e.commit("1.0", map[string]string{".pushdeploy/before-switch": holdHook, "NEWS": "serve killed\n"})
		if err := os.WriteFile(hold, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		states := f.states()
		code, out := s.postDeploy("")
		if code != http.StatusAccepted {
			t.Fatalf("POST /api/deploy: %d %v", code, out)
		}
		waitFor(t, "host 2's before-switch hook", nil, func() bool { return exists(mark) })
		if err := s.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-s.exited
		for _, h := range []*testhosts.Host{h1, h2} {
			waitFor(t, h.Name+"'s lock to be freed", nil, func() bool { return e.lockFree(h) })
		}
		_ = os.Remove(hold)
		_ = os.Remove(mark)
		if after := f.states(); fmt.Sprint(after) != fmt.Sprint(states) {
			t.Errorf("hosts switched by a deployment whose serve was killed while preparing: %v, were %v", after, states)
		}
		// (That the history calls it interrupted is for the history
		// package's tests, which are not in yet.)
		s = e.serve()
		code, out = s.postDeploy("")
		if code != http.StatusAccepted {
			t.Fatalf("POST /api/deploy after the restart: %d %v", code, out)
		}
		if d := s.waitDone(out["deployment"].(string)); d["status"] != "succeeded" {
			t.Fatalf("deployment after the restart: %v\n%s", d, s.stderr)
		}
		f.sound(t, f.every(sha))
		s.terminate()
	})
}

// postDeploy posts body to /api/deploy.
func (s *server) postDeploy(body string) (int, map[string]any) {
	s.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.url+"/api/deploy", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.token)
	return s.do(req)
}

// terminate ends serve with SIGTERM and waits for it.
func (s *server) terminate() {
	s.t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(time.Minute):
		s.t.Errorf("serve did not stop\n%s", s.stderr)
	}
}
