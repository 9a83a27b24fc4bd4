package sshrun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/internal/sshkeys"
)

var (
	_ deploy.Dialer = (*Runner)(nil)
	_ deploy.Conn   = (*conn)(nil)
)

// Config says how a Runner logs in.
type Config struct {
	// Key is the admin private key (PEM or OpenSSH format) that logs into
	// the hosts; Passphrase decrypts it when it is encrypted.
	Key        []byte
	Passphrase string
	// GitKey, when set, is the read-only deploy key lent to commands that
	// set deploy.Command.ForwardAgent, and to nothing else.
	GitKey           []byte
	GitKeyPassphrase string
	// KnownHosts is the path of the known_hosts file every host key is
	// checked against.
	KnownHosts string
	// ConnectTimeout bounds the TCP connect plus SSH handshake.
	ConnectTimeout time.Duration
	// KeepAlive is how often an idle connection is probed, so a dead host
	// is noticed while a long step runs; 0 means 15s.
	KeepAlive time.Duration
}

// Runner dials hosts over SSH. It owns two in-memory agent keyrings (the
// admin key for logging in, the deploy key for lending) that live until
// Close, as ssh-agent did for the original shell script. It is safe for
// concurrent use.
type Runner struct {
	cfg       Config
	hostKeys  *sshkeys.KnownHosts
	admin     agent.Agent
	git       agent.Agent // nil without a deploy key
	jumps     jumpPool
	closeOnce sync.Once
}

// New loads the keys into fresh keyrings and reads the known_hosts file.
func New(c Config) (*Runner, error) {
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 10 * time.Second
	}
	if c.KeepAlive <= 0 {
		c.KeepAlive = 15 * time.Second
	}
	known, err := sshkeys.ReadKnownHosts(c.KnownHosts)
	if err != nil {
		return nil, fmt.Errorf("known hosts %s: %w", c.KnownHosts, err)
	}
	r := &Runner{cfg: c, hostKeys: known, admin: agent.NewKeyring()}
	// No admin key is fine for a pool of only `local` hosts.
	if len(c.Key) > 0 {
		if err := addKey(r.admin, c.Key, c.Passphrase, "admin key"); err != nil {
			return nil, err
		}
	}
	if len(c.GitKey) > 0 {
		r.git = agent.NewKeyring()
		if err := addKey(r.git, c.GitKey, c.GitKeyPassphrase, "deploy key"); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func addKey(a agent.Agent, pemBytes []byte, passphrase, what string) error {
	raw, err := sshkeys.Parse(pemBytes, passphrase)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := a.Add(agent.AddedKey{PrivateKey: raw, Comment: what}); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// Close empties the keyrings. Connections already made stay usable until
// they are closed, but nothing can sign with the keys any more.
func (r *Runner) Close() error {
	r.closeOnce.Do(func() {
		_ = r.admin.RemoveAll()
		if r.git != nil {
			_ = r.git.RemoveAll()
		}
	})
	return nil
}

// Dial connects and logs in to h, checking its host key first; through
// h's jump hosts, if any, whose keys are checked too and into which the
// admin key logs in as well. The connect timeout covers the whole chain. A
// jump host's connection is shared by the hosts behind it, and closed with
// the last of them. The returned connection is meant to be reused by every
// step on that host.
func (r *Runner) Dial(ctx context.Context, h deploy.Host) (deploy.Conn, error) {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, r.cfg.ConnectTimeout)
	defer cancel()
	via, err := r.jumps.acquire(r, parent, ctx, h.Jump)
	if err != nil {
		return nil, err
	}
	client, err := r.login(parent, ctx, via, h.User, h.Address())
	if err != nil {
		via.release()
		return nil, err
	}
	c := &conn{client: client, git: r.git, release: via.release}
	go keepAlive(c.client, r.cfg.KeepAlive)
	return c, nil
}

// login connects to addr (directly, or through the jump host via when it
// is not nil) and logs in as user, checking the host key first.
func (r *Runner) login(parent, ctx context.Context, via *jump, user, addr string) (*ssh.Client, error) {
	cfg := &ssh.ClientConfig{
		User:              user,
		Auth:              []ssh.AuthMethod{ssh.PublicKeysCallback(r.admin.Signers)},
		HostKeyCallback:   r.hostKeys.Check,
		HostKeyAlgorithms: r.hostKeys.Algorithms(addr),
		Timeout:           r.cfg.ConnectTimeout,
	}
	var client *ssh.Client
	if via == nil {
		var d net.Dialer
		nc, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("connect %s: %w", addr, r.timedOut(parent, ctx, "", err))
		}
		client, err = handshake(ctx, nc, addr, cfg)
		if err != nil {
			err = r.timedOut(parent, ctx, "the SSH handshake ", cleanHandshakeError(err))
			return nil, fmt.Errorf("ssh login %s@%s: %w", user, addr, err)
		}
		return client, nil
	}
	nc, err := r.tunnel(parent, ctx, via, addr)
	if err != nil {
		return nil, err
	}
	if client, err = tunnelHandshake(ctx, nc, addr, cfg); err != nil {
		err = r.timedOut(parent, ctx, "the SSH handshake ", cleanHandshakeError(err))
		return nil, fmt.Errorf("ssh login %s@%s through %s: %w", user, addr, via.name, err)
	}
	return client, nil
}

// handshake runs the SSH handshake on nc. x/crypto/ssh takes no context:
// the handshake is bounded by a deadline (where nc has deadlines) and nc
// is closed if ctx ends first.
func handshake(ctx context.Context, nc net.Conn, addr string, cfg *ssh.ClientConfig) (*ssh.Client, error) {
	deadline, _ := ctx.Deadline()
	_ = nc.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(nc, addr, cfg)
	if !stop() || err != nil {
		nc.Close()
		if err == nil {
			err = ctx.Err()
		}
		return nil, err
	}
	_ = nc.SetDeadline(time.Time{})
	return ssh.NewClient(sc, chans, reqs), nil
}

// timedOut wraps err in a *connectTimeoutError when the connect timeout
// (ctx's deadline, not the caller's) cut the connection: err itself reads
// "i/o timeout" or "use of closed network connection", depending on
// whether the socket deadline or ctx fired first, and does not say what
// to change.
func (r *Runner) timedOut(parent, ctx context.Context, what string, err error) error {
	var ne net.Error
	if parent.Err() != nil || ctx.Err() == nil && !(errors.As(err, &ne) && ne.Timeout()) {
		return err
	}
	return &connectTimeoutError{What: what, After: r.cfg.ConnectTimeout, Err: err}
}

// connectTimeoutError is a connection to a host, or its SSH handshake,
// that took longer than Config.ConnectTimeout.
type connectTimeoutError struct {
	What  string // "" for the TCP connect, "the SSH handshake " for the handshake
	After time.Duration
	Err   error // what the connection reported as it was cut
}

func (e *connectTimeoutError) Error() string {
	return fmt.Sprintf("%stimed out after %s (DEPLOY_CONNECT_TIMEOUT)", e.What, e.After)
}

func (e *connectTimeoutError) Unwrap() error { return e.Err }

// cleanHandshakeError removes x/crypto/ssh's "ssh: handshake failed:"
// prefix so that our own host-key messages read plainly.
func cleanHandshakeError(err error) error {
	var hk *sshkeys.HostKeyError
	if errors.As(err, &hk) {
		return hk
	}
	return err
}

type conn struct {
	client  *ssh.Client
	git     agent.Agent
	release func() // gives back the jump host connection, if any

	releaseOnce sync.Once

	forwardOnce sync.Once
	forwardErr  error
	// sshd grants agent forwarding once per connection; the socket then
	// serves every later session, so it is asked for only once.
	forwardMu   sync.Mutex
	forwardedOK bool
	lending     atomic.Int32 // commands currently allowed to use the deploy key
}

// keepAlive probes the server so that a dead peer breaks running commands
// instead of leaving them waiting forever. It ends when the client closes.
func keepAlive(client *ssh.Client, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	misses := 0
	for range t.C {
		reply := make(chan error, 1)
		go func() {
			_, _, err := client.SendRequest("keepalive@openssh.com", true, nil)
			reply <- err
		}()
		select {
		case err := <-reply:
			if err != nil {
				return // closed
			}
			misses = 0
		case <-time.After(every):
			misses++
			if misses >= 3 {
				client.Close()
				return
			}
		}
	}
}

// Close closes the connection and every session on it, and then the jump
// host connection when this was the last host behind it.
func (c *conn) Close() error {
	err := c.client.Close()
	c.releaseOnce.Do(c.release)
	return err
}

// Run runs cmd in a new session and waits for it. When ctx ends first the
// remote command is sent SIGTERM and the session closed.
func (c *conn) Run(ctx context.Context, cmd deploy.Command) error {
	sess, err := c.client.NewSession()
	if err != nil {
		return fmt.Errorf("open session: %w", err)
	}
	defer sess.Close()
	if cmd.ForwardAgent {
		if err := c.lend(sess); err != nil {
			return err
		}
		var once sync.Once
		unlend := func() { once.Do(func() { c.lending.Add(-1) }) }
		defer unlend()
		defer cmd.AfterLend(unlend)()
	}
	sess.Stdout = orDiscard(cmd.Stdout)
	sess.Stderr = orDiscard(cmd.Stderr)
	// StdinPipe rather than Stdin: Session.Wait waits for a Stdin copy to
	// end, which would hang on a reader that blocks after the command
	// has exited.
	stdin, err := sess.StdinPipe()
	if err != nil {
		return err
	}
	if err := sess.Start(cmd.String()); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	inputFailed := make(chan error, 1)
	if cmd.Stdin == nil {
		stdin.Close()
	} else {
		go func() {
			if err := deploy.CopyStdin(stdin, cmd.Stdin); err != nil {
				inputFailed <- err
				stop() // the command saw part of its input: stop it, as for ctx
			}
		}()
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	select {
	case err := <-done:
		if err := failedInput(inputFailed); err != nil {
			return err
		}
		return exitError(err)
	case <-ctx.Done():
		_ = sess.Signal(ssh.SIGTERM)
		sess.Close()
		if err := failedInput(inputFailed); err != nil {
			return err
		}
		return ctx.Err()
	}
}

// failedInput is the error of a command's input, when reading it failed.
func failedInput(c <-chan error) error {
	select {
	case err := <-c:
		return err
	default:
		return nil
	}
}

// lend makes the deploy key available to this one session through agent
// forwarding. The key is only usable while such a session runs: the
// forwarded agent refuses everything otherwise, so a host cannot reuse the
// agent channel later. OpenSSH's sshd accepts one forwarding request per
// connection and hands its socket to every session started after it, so
// later sessions (with or without ForwardAgent) see SSH_AUTH_SOCK; the
// refusals of lentAgent are what keeps the key from them.
func (c *conn) lend(sess *ssh.Session) error {
	if c.git == nil {
		return errors.New("agent forwarding asked for, but no deploy key (DEPLOY_GIT_KEY) is set")
	}
	c.forwardOnce.Do(func() {
		c.forwardErr = agent.ForwardToAgent(c.client, &lentAgent{inner: c.git, lending: &c.lending})
	})
	if c.forwardErr != nil {
		return fmt.Errorf("agent forwarding: %w", c.forwardErr)
	}
	c.forwardMu.Lock()
	defer c.forwardMu.Unlock()
	if !c.forwardedOK {
		if err := agent.RequestAgentForwarding(sess); err != nil {
			return fmt.Errorf("agent forwarding refused by the host: %w", err)
		}
		c.forwardedOK = true
	}
	c.lending.Add(1)
	return nil
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// exitError turns the *ssh.ExitError in err into a *deploy.ExitError, and
// a connection that ended under the command into an error that says so.
func exitError(err error) error {
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		if ee.Signal() != "" {
			return &deploy.ExitError{Status: -1, Signal: ee.Signal()}
		}
		return &deploy.ExitError{Status: ee.ExitStatus()}
	}
	var missing *ssh.ExitMissingError
	if errors.As(err, &missing) {
		return errors.New("connection lost before the command finished")
	}
	if errors.Is(err, io.EOF) {
		return errors.New("connection lost")
	}
	return err
}
