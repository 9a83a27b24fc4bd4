package testhosts

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// userMu serialises useradd and userdel within this process; they lock
// /etc/passwd and fail rather than wait long when it is busy. Other
// processes are handled by retrying.
var userMu sync.Mutex

// createUser adds h.User with shell /bin/sh and the home folder h.Home
// (created, owned by the user, 0755).
func createUser(ctx context.Context, h *Host) error {
	// -p '*': a locked password ("!", useradd's default) makes sshd without
	// PAM refuse every login, keys included; "*" just matches no password.
	args := []string{"-M", "-U", "-d", h.Home, "-s", "/bin/sh", "-p", "*", "-c", "pushdeploy testhosts", h.User}
	if err := userCmd(ctx, "useradd", args...); err != nil {
		return fmt.Errorf("user %s: %w", h.User, err)
	}
	h.created = true
	u, err := user.Lookup(h.User)
	if err != nil {
		return fmt.Errorf("user %s: %w", h.User, err)
	}
	if h.uid, err = strconv.Atoi(u.Uid); err != nil {
		return fmt.Errorf("user %s: uid: %w", h.User, err)
	}
	if h.gid, err = strconv.Atoi(u.Gid); err != nil {
		return fmt.Errorf("user %s: gid: %w", h.User, err)
	}
	if err := os.Mkdir(h.Home, 0o755); err != nil {
		return fmt.Errorf("user %s: home: %w", h.User, err)
	}
	// Mkdir is subject to the umask.
	if err := os.Chmod(h.Home, 0o755); err != nil {
		return fmt.Errorf("user %s: home: %w", h.User, err)
	}
	if err := os.Chown(h.Home, h.uid, h.gid); err != nil {
		return fmt.Errorf("user %s: home: %w", h.User, err)
	}
	return nil
}

// deleteUser kills every process of h's user and deletes the user. -f
// because orphaned processes linger as zombies when PID 1 does not reap
// them, and userdel would count those as the user still being logged in.
func deleteUser(h *Host) error {
	if !h.created {
		return nil
	}
	if h.uid > 0 {
		if err := killUser(h.uid); err != nil {
			return fmt.Errorf("user %s: %w", h.User, err)
		}
	}
	// Cleanup must run even when the caller's context is done.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := userCmd(ctx, "userdel", "-f", h.User); err != nil {
		return fmt.Errorf("user %s: %w", h.User, err)
	}
	h.created = false
	return nil
}

// userCmd runs useradd or userdel, retrying while another process holds the
// lock on the user database.
func userCmd(ctx context.Context, name string, args ...string) error {
	userMu.Lock()
	defer userMu.Unlock()
	for attempt := 0; ; attempt++ {
		out, err := run(ctx, nil, "", name, args...)
		if err == nil || attempt == 20 || !strings.Contains(out, "lock") {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// proc is what killUser and killTree need to know about a process.
type proc struct {
	pid, ppid int
	uids      []int // real, effective, saved, filesystem
	state     byte  // 'Z' zombie, 'T' stopped, ...
}

// processes lists the processes of the machine. Processes that exit while it
// reads are skipped.
func processes() ([]proc, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var ps []proc
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		if p, ok := readProc(pid); ok {
			ps = append(ps, p)
		}
	}
	return ps, nil
}

// readProc reads /proc/PID/stat and /proc/PID/status. ok is false when the
// process is gone.
func readProc(pid int) (p proc, ok bool) {
	dir := filepath.Join("/proc", strconv.Itoa(pid))
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return p, false
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 {
		return p, false
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 2 {
		return p, false
	}
	p.pid, p.state = pid, f[0][0]
	if p.ppid, err = strconv.Atoi(f[1]); err != nil {
		return p, false
	}
	status, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return p, false
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, found := strings.CutPrefix(line, "Uid:"); found {
			for _, s := range strings.Fields(rest) {
				if n, err := strconv.Atoi(s); err == nil {
					p.uids = append(p.uids, n)
				}
			}
		}
	}
	return p, true
}

// freezeAndKill stops every process that match selects, again and again
// until no new one turns up (a stopped process cannot fork, and a stopped
// parent keeps its children findable), then kills them all.
func freezeAndKill(match func(p proc, frozen map[int]bool) bool) error {
	frozen := map[int]bool{}
	for round := 0; ; round++ {
		ps, err := processes()
		if err != nil {
			return err
		}
		grew := false
		for _, p := range ps {
			if p.state == 'Z' || frozen[p.pid] || !match(p, frozen) {
				continue
			}
			if err := syscall.Kill(p.pid, syscall.SIGSTOP); err == nil {
				frozen[p.pid] = true
				grew = true
			}
		}
		if !grew {
			break
		}
		if round == 50 {
			return errors.New("processes keep appearing")
		}
	}
	for pid := range frozen {
		// Gone already is fine; anything else would be a bug in the match.
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("kill %d: %w", pid, err)
		}
	}
	return nil
}

// killTree kills every descendant of root (not root itself).
func killTree(root int) error {
	err := freezeAndKill(func(p proc, frozen map[int]bool) bool {
		return p.ppid == root || frozen[p.ppid]
	})
	if err != nil {
		return fmt.Errorf("kill processes below %d: %w", root, err)
	}
	return nil
}

// killUser kills every process running as uid.
func killUser(uid int) error {
	if uid <= 0 {
		// uid 0 is root or a user that was never looked up: never kill those.
		return fmt.Errorf("refusing to kill processes of uid %d", uid)
	}
	err := freezeAndKill(func(p proc, _ map[int]bool) bool {
		for _, u := range p.uids {
			if u == uid {
				return true
			}
		}
		return false
	})
	if err != nil {
		return fmt.Errorf("kill processes of uid %d: %w", uid, err)
	}
	return nil
}
