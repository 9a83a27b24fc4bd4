package localrun

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// runAs is the user the commands of a Runner with User run as.
type runAs struct {
	name     string
	uid, gid uint32
	groups   []uint32 // supplementary groups, from the group database
	home     string
}

// lookupUser finds name in the user database. Root is refused: running
// as root is no privilege drop.
func lookupUser(name string) (*runAs, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("user %s: %w", name, err)
	}
	as := &runAs{name: u.Username, home: u.HomeDir}
	if as.uid, err = parseID(u.Uid); err != nil {
		return nil, fmt.Errorf("user %s: uid: %w", name, err)
	}
	if as.gid, err = parseID(u.Gid); err != nil {
		return nil, fmt.Errorf("user %s: gid: %w", name, err)
	}
	if as.uid == 0 {
		return nil, fmt.Errorf("user %s is root: commands would keep every privilege", name)
	}
	gids, err := u.GroupIds()
	if err != nil {
		return nil, fmt.Errorf("user %s: groups: %w", name, err)
	}
	for _, g := range gids {
		id, err := parseID(g)
		if err != nil {
			return nil, fmt.Errorf("user %s: group: %w", name, err)
		}
		as.groups = append(as.groups, id)
	}
	if as.home == "" {
		return nil, fmt.Errorf("user %s has no home folder in the user database", name)
	}
	return as, nil
}

func parseID(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err
}

// cred is the credential a command's process takes before it runs the
// shell: uid, gid and exactly the user's groups, none of the deployer's.
// From root to another uid, the kernel also clears every capability.
func (a *runAs) cred() *syscall.Credential {
	return &syscall.Credential{Uid: a.uid, Gid: a.gid, Groups: a.groups}
}

// userPath is the PATH of commands run as another user: the one sshd gives
// a login without a PATH of its own.
const userPath = "/usr/local/bin:/usr/bin:/bin"

// env is the whole environment of a command run as the user, built from
// scratch as a login would have it: nothing of the deployer's environment
// (its secrets, SSH_AUTH_SOCK, HOME) reaches the command.
func (a *runAs) env() []string {
	return []string{
		"HOME=" + a.home,
		"USER=" + a.name,
		"LOGNAME=" + a.name,
		"PATH=" + userPath,
		"LANG=C.UTF-8",
	}
}

// own gives the lent agent's socket, and the private folder it is in, to
// the user: the deployer created them (mode 0700), and the clone, which
// runs as the user, must reach the socket. Nobody else can, as before.
func (a *runAs) own(sock string) error {
	if sock == "" {
		return errors.New("no socket")
	}
	for _, p := range []string{filepath.Dir(sock), sock} {
		if err := os.Lchown(p, int(a.uid), int(a.gid)); err != nil {
			return fmt.Errorf("give the agent socket to user %s: %w", a.name, err)
		}
	}
	return nil
}
