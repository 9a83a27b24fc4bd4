package deploy

import (
	"context"
	"io"
)

// Resolver turns a Push into the exact commit to ship, checked against the
// repository itself (never trusting the pusher's word). Implementations
// return an error when the branch is not the release branch, the branch is
// missing, or the requested commit is not on it. Safe for concurrent use.
type Resolver interface {
	Resolve(ctx context.Context, p Push) (Release, error)
}

// Dialer opens a connection to a host. Implementations check the host's
// key before sending anything and return an error naming the host when it
// is unknown or changed. Safe for concurrent use.
type Dialer interface {
	Dial(ctx context.Context, h Host) (Conn, error)
}

// Conn is one logged-in connection to a host, reused by every step there.
// Run may be called concurrently (the host lock is held by one long command
// while the steps run beside it).
type Conn interface {
	// Run runs cmd and waits for it. A command that exits non-zero returns
	// an error with an ExitStatus() int method; when ctx ends first the
	// remote command is stopped and ctx.Err() returned.
	Run(ctx context.Context, cmd Command) error
	Close() error
}

// Archiver writes the files of a commit as a tar stream (push mode).
// Implementations return an error when the commit cannot be shipped whole
// (not in the repository, submodules). Safe for concurrent use.
type Archiver interface {
	Archive(ctx context.Context, commit string, w io.Writer) error
}
