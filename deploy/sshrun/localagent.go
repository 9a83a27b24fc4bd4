package sshrun

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/ssh/agent"
)

// ServeGitAgent lends the deploy key to one command on this machine, the
// local counterpart of agent forwarding: it serves an SSH agent holding
// the deploy key alone, read-only, on a Unix socket in a new private
// (0700) folder inside dir (empty: os.TempDir()), and returns the socket's
// path for SSH_AUTH_SOCK. The key stays in memory; only the socket is on
// disk. stop ends the agent: from then on it refuses to sign, open
// connections are closed, and the folder is removed. stop must be called
// (it is safe to call more than once); the agent also stops when ctx ends.
//
// It fails when the Runner has no deploy key (DEPLOY_GIT_KEY). Safe for
// concurrent use: each call serves its own socket.
func (r *Runner) ServeGitAgent(ctx context.Context, dir string) (sock string, stop func(), err error) {
	if r.git == nil {
		return "", nil, errors.New("the deploy key is to be lent, but no deploy key (DEPLOY_GIT_KEY) is set")
	}
	if dir == "" {
		dir = os.TempDir()
	}
	// A short name: a socket path must fit in 108 bytes.
	private, err := os.MkdirTemp(dir, "pdagent-")
	if err != nil {
		return "", nil, fmt.Errorf("deploy key agent: %w", err)
	}
	if err := os.Chmod(private, 0o700); err != nil {
		_ = os.RemoveAll(private)
		return "", nil, fmt.Errorf("deploy key agent: %w", err)
	}
	sock = filepath.Join(private, "agent.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		_ = os.RemoveAll(private)
		return "", nil, fmt.Errorf("deploy key agent: %w", err)
	}
	s := &localAgent{ln: ln, dir: private, conns: map[net.Conn]bool{}}
	s.lending.Store(1)
	s.agent = &lentAgent{inner: r.git, lending: &s.lending}
	s.wg.Go(s.serve)
	unhook := context.AfterFunc(ctx, s.stop)
	return sock, func() { unhook(); s.stop() }, nil
}

// localAgent is one socket served by ServeGitAgent.
type localAgent struct {
	ln      *net.UnixListener
	dir     string
	agent   *lentAgent
	lending atomic.Int32 // 1 while served; 0 makes the agent refuse

	wg       sync.WaitGroup // the accept loop and one per connection
	mu       sync.Mutex
	conns    map[net.Conn]bool
	stopped  bool
	stopOnce sync.Once
}

// serve accepts connections until the listener is closed by stop.
func (s *localAgent) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.stopped {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = true
		s.mu.Unlock()
		s.wg.Go(func() {
			_ = agent.ServeAgent(s.agent, c)
			c.Close()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		})
	}
}

// stop refuses further signatures, closes the listener and every
// connection, waits for their goroutines and removes the folder.
func (s *localAgent) stop() {
	s.stopOnce.Do(func() {
		s.lending.Store(0)
		s.mu.Lock()
		s.stopped = true
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.ln.Close()
		s.wg.Wait()
		_ = os.RemoveAll(s.dir)
	})
}
