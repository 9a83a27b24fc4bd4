// Package localrun runs deploy commands on the deployer's own machine, for
// the hosts-file line "local": the same rendered command lines as over SSH,
// given to a local shell without SSH, as the deployer's user or, with
// Runner.User, as another user.
package localrun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
)

var (
	_ deploy.Dialer = (*Runner)(nil)
	_ deploy.Conn   = (*conn)(nil)
)

// LendFunc lends the deploy key to one command: it serves an SSH agent
// holding only that key on a Unix socket, alone in a private folder of its
// own, and returns the socket's path (for SSH_AUTH_SOCK) and a stop
// function that ends the agent and removes the socket and its folder. With
// Runner.User, Run gives that folder and the socket to the user.
// sshrun.Runner.ServeGitAgent is one.
type LendFunc func(ctx context.Context, dir string) (sock string, stop func(), err error)

// Runner is a deploy.Dialer for the Local host. Its fields are read at
// Dial; set them before the first one. It is safe for concurrent use.
type Runner struct {
	// Shell runs each command line as Shell -c LINE; empty means /bin/sh.
	Shell string
	// Dir is the folder commands start in, so that a relative root is
	// relative to it; empty means the home folder of the deployer's user
	// ($HOME), the rule SSH logins follow.
	Dir string
	// Lend serves the deploy key to commands that set ForwardAgent
	// (the clone); nil makes such commands fail.
	Lend LendFunc
	// KillAfter is how long a cancelled command's process group has
	// between SIGTERM and SIGKILL; 0 means 5s.
	KillAfter time.Duration
	// User, when set, is the user every command runs as
	// (DEPLOY_LOCAL_USER): each command's process takes the user's uid,
	// gid and groups before the shell starts, which needs the deployer to
	// run as root, and gets a fresh environment (userEnv) instead of the
	// deployer's. Commands then start in the user's home folder unless Dir
	// is set. Empty: the deployer's own user.
	User string
}

// New returns a Runner with the defaults that lends the deploy key with
// lend (nil: none).
func New(lend LendFunc) *Runner {
	return &Runner{Lend: lend}
}

// Dial checks that h is the Local host and that the shell and the start
// folder are usable, and returns a connection. Nothing stays open between
// commands, so Dial is cheap.
func (r *Runner) Dial(ctx context.Context, h deploy.Host) (deploy.Conn, error) {
	if !h.Local {
		return nil, fmt.Errorf("host %s: not the local host; it is reached over SSH", h)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c := &conn{
		shell:     r.Shell,
		dir:       r.Dir,
		lend:      r.Lend,
		killAfter: r.KillAfter,
	}
	if c.shell == "" {
		c.shell = "/bin/sh"
	}
	if c.killAfter <= 0 {
		c.killAfter = 5 * time.Second
	}
	if r.User != "" {
		as, err := lookupUser(r.User)
		if err != nil {
			return nil, fmt.Errorf("local: %w", err)
		}
		c.as = as
		if c.dir == "" {
			c.dir = as.home
		}
	}
	if c.dir == "" {
		home, err := homeDir()
		if err != nil {
			return nil, fmt.Errorf("local: %w", err)
		}
		c.dir = home
	}
	if fi, err := os.Stat(c.dir); err != nil {
		return nil, fmt.Errorf("local: start folder: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("local: start folder %s is not a folder", c.dir)
	}
	if _, err := exec.LookPath(c.shell); err != nil {
		return nil, fmt.Errorf("local: shell: %w", err)
	}
	c.alive, c.close = context.WithCancel(context.Background())
	return c, nil
}

// homeDir is $HOME, or the user database's home when it is unset: the
// deployer's own.
func homeDir() (string, error) {
	if home := os.Getenv("HOME"); home != "" {
		return home, nil
	}
	u, err := user.Current()
	if err != nil || u.HomeDir == "" {
		return "", errors.New("cannot find the home folder of the deployer's user: set HOME")
	}
	return u.HomeDir, nil
}

// conn runs commands with the local shell.
type conn struct {
	shell     string
	dir       string
	lend      LendFunc
	killAfter time.Duration
	as        *runAs // nil: the deployer's own user

	// alive ends when the connection is closed: running commands are
	// stopped then.
	alive context.Context
	close context.CancelFunc
}

// Close stops the commands still running (as closing an SSH connection
// does) and makes later Runs fail.
func (c *conn) Close() error {
	c.close()
	return nil
}

var errClosed = errors.New("local: connection closed")

// Run runs cmd.String() with the shell, in its own process group. When ctx
// ends (or the connection is closed) first, the group is sent SIGTERM,
// then SIGKILL after KillAfter if anything of it is left, and ctx.Err() is
// returned once the group is gone. A non-zero exit is a *deploy.ExitError.
func (c *conn) Run(ctx context.Context, cmd deploy.Command) error {
	if c.alive.Err() != nil {
		return errClosed
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(c.alive, cancel)()

	var env []string
	if c.as != nil {
		env = c.as.env()
	} else {
		env = environ(os.Environ(), cmd.ForwardAgent)
	}
	if cmd.ForwardAgent {
		if c.lend == nil {
			return errors.New("the deploy key is to be lent, but no deploy key (DEPLOY_GIT_KEY) is set")
		}
		sock, stop, err := c.lend(ctx, "")
		if err != nil {
			return fmt.Errorf("lend the deploy key: %w", err)
		}
		var once sync.Once
		unlend := func() { once.Do(stop) }
		defer unlend()
		defer cmd.AfterLend(unlend)()
		if c.as != nil {
			if err := c.as.own(sock); err != nil {
				return fmt.Errorf("lend the deploy key: %w", err)
			}
		}
		env = append(env, "SSH_AUTH_SOCK="+sock)
	}

	x := exec.CommandContext(ctx, c.shell, "-c", cmd.String())
	x.Dir = c.dir
	x.Env = env
	x.Stdout, x.Stderr = orDiscard(cmd.Stdout), orDiscard(cmd.Stderr)
	x.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if c.as != nil {
		x.SysProcAttr.Credential = c.as.cred()
	}
	var termAt atomic.Int64 // when the group was sent SIGTERM (unix ns)
	x.Cancel = func() error {
		termAt.Store(time.Now().UnixNano())
		return syscall.Kill(-x.Process.Pid, syscall.SIGTERM)
	}
	// StdinPipe rather than Stdin: Wait would wait for a Stdin copy to
	// end, which hangs on a reader that blocks after the command exited.
	stdin, err := x.StdinPipe()
	if err != nil {
		return err
	}
	// After a SIGTERM, or once the shell is gone, Wait waits at most this
	// long for the shell and for the output pipes (which a background
	// process may hold open) before it kills the shell and returns.
	x.WaitDelay = c.killAfter
	if err := x.Start(); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	inputFailed := make(chan error, 1)
	if cmd.Stdin == nil {
		stdin.Close()
	} else {
		go func() {
			if err := deploy.CopyStdin(stdin, cmd.Stdin); err != nil {
				inputFailed <- err
				cancel() // the command saw part of its input: stop it, as for ctx
			}
		}()
	}

	err = x.Wait()
	if t := termAt.Load(); t != 0 {
		c.finish(x.Process.Pid, time.Unix(0, t).Add(c.killAfter))
	}
	select {
	case err := <-inputFailed:
		return err
	default:
	}
	if ctx.Err() != nil {
		if c.alive.Err() != nil {
			return errClosed
		}
		return ctx.Err()
	}
	if errors.Is(err, exec.ErrWaitDelay) {
		// The command succeeded; something it started in the background
		// held its output open, and that output is dropped.
		return nil
	}
	return exitError(err)
}

// finish waits, after a SIGTERM, until the process group pgid is empty or
// deadline has passed, and then sends SIGKILL to what is left of it: the
// processes a stopped command started do not outlive Run.
func (c *conn) finish(pgid int, deadline time.Time) {
	gone := func() bool { return syscall.Kill(-pgid, 0) != nil }
	for !gone() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if gone() || syscall.Kill(-pgid, syscall.SIGKILL) != nil {
		return
	}
	// KILL takes effect at once, but the kernel takes a moment to tear
	// the processes down; a bounded wait, as zombies count until reaped.
	for end := time.Now().Add(time.Second); !gone() && time.Now().Before(end); {
		time.Sleep(10 * time.Millisecond)
	}
}

// environ is the deployer's environment for a local command, without the
// DEPLOY_ variables (passphrases, the webhook secret, the API token: a
// host reached over SSH does not see them either), and without the
// deployer's own agent when the deploy key is lent instead.
func environ(all []string, lending bool) []string {
	out := make([]string, 0, len(all))
	for _, kv := range all {
		if strings.HasPrefix(kv, "DEPLOY_") || lending && strings.HasPrefix(kv, "SSH_AUTH_SOCK=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}
