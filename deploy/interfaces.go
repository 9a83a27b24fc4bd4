package deploy

import (
	"context"
	"errors"
	"fmt"
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
	// Run runs cmd and waits for it. A command that exits non-zero or is
	// killed by a signal returns a *ExitError; when ctx ends first the
	// remote command is stopped and ctx.Err() returned. When reading
	// cmd.Stdin fails, the command is stopped and Run fails with that
	// error, whatever the command did with the input it had (CopyStdin).
	Run(ctx context.Context, cmd Command) error
	Close() error
}

// Archiver writes the files of a commit as a tar stream (push mode).
// Implementations return an error when the commit cannot be shipped whole
// (not in the repository, submodules). Safe for concurrent use.
type Archiver interface {
	Archive(ctx context.Context, commit string, w io.Writer) error
}

// CopyStdin feeds a command's input, for implementations of Conn: it
// copies src into stdin and closes stdin at src's end. When reading src
// fails it returns that error and leaves stdin open, for closing it would
// show the command a clean end of its input (tar, for one, then exits 0
// with part of an archive): the Conn must then stop the command and fail.
// Writing to stdin may fail too, when the command exits without reading
// all of it; that is no error here, the command's exit status tells.
func CopyStdin(stdin io.WriteCloser, src io.Reader) error {
	r := &readErr{r: src}
	_, _ = io.Copy(stdin, r)
	if r.err != nil {
		return fmt.Errorf("the command's input: %w", r.err)
	}
	_ = stdin.Close() // fails only when the command has ended: its exit status tells
	return nil
}

// readErr remembers the error of a failed read (io.EOF is none).
type readErr struct {
	r   io.Reader
	err error
}

func (r *readErr) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		r.err = err
	}
	return n, err
}
