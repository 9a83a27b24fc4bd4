package deploy

import (
	"io"
	"strconv"
	"strings"
	"time"
)

// Command is one remote command, built as an argument list. It is turned
// into the single string a remote shell sees by String, which quotes every
// part with Quote: no other code in pushdeploy builds shell text.
type Command struct {
	// Args is the program and its arguments. Shell constructs (pipes, &&)
	// are written as a constant script run with "sh -c SCRIPT sh ARGS...",
	// so that values only ever arrive as quoted positional parameters.
	Args []string
	// Dir, when set, is the folder the command runs in.
	Dir string
	// Env holds extra "KEY=value" variables for the command.
	Env []string
	// Timeout, when positive, is enforced on the host too (coreutils
	// timeout kills the command's whole process group), so a step that
	// overruns does not linger there after the deployer gives up on it.
	Timeout time.Duration
	// Stdin, Stdout and Stderr are connected to the remote command; nil
	// means empty input and discarded output.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// ForwardAgent lends the deploy key to this one command through SSH
	// agent forwarding. Only the fetch sets it.
	ForwardAgent bool
	// LendUntil, with ForwardAgent, ends the loan before the command
	// ends: once it is closed the key signs nothing more for the host.
	// The prepare command fetches first and runs repository code (pip,
	// hooks) later in the same command: the loan ends with the fetch.
	// nil: lent for the whole command.
	LendUntil <-chan struct{}
	// Hold, when set, is a lock file on the host that the command holds
	// shared (flock -s) for as long as it runs. A command outlives a
	// deployer that is killed or cut off; the next deployment's lock
	// step waits for it (lockScript) instead of working beside it.
	Hold string
}

// AfterLend calls end when c's loan of the deploy key ends early
// (LendUntil is closed) and returns what stops that watch: a runner calls
// it once the command has ended, and ends the loan then too (end must be
// safe to call twice).
func (c Command) AfterLend(end func()) (stop func()) {
	if c.LendUntil == nil {
		return func() {}
	}
	ended := make(chan struct{})
	go func() {
		select {
		case <-c.LendUntil:
			end()
		case <-ended:
		}
	}()
	return func() { close(ended) }
}

// String renders the command as one line for a POSIX shell.
func (c Command) String() string {
	var b strings.Builder
	if c.Dir != "" {
		b.WriteString("cd " + Quote(c.Dir) + " && ")
	}
	b.WriteString("exec")
	if c.Timeout > 0 {
		// -k: a command that ignores TERM is killed 10s later.
		secs := int64((c.Timeout + time.Second - 1) / time.Second)
		b.WriteString(" timeout -k 10 " + strconv.FormatInt(secs, 10))
	}
	if c.Hold != "" {
		// Inside timeout, which signals the whole process group: a
		// cancelled or overrunning command still ends, and frees the lock.
		// -o: only flock itself holds the lock, not the command, so a
		// server the restart command leaves running does not keep it.
		b.WriteString(" flock -s -o " + Quote(c.Hold))
	}
	if len(c.Env) > 0 {
		b.WriteString(" env")
		for _, kv := range c.Env {
			b.WriteString(" " + Quote(kv))
		}
	}
	for _, a := range c.Args {
		b.WriteString(" " + Quote(a))
	}
	return b.String()
}

// Quote returns s as one word for a POSIX shell: unchanged when it holds
// only characters no shell treats specially, otherwise in single quotes, with
// each single quote closed, escaped and reopened. Inside single quotes nothing is special,
// so $(…), backticks, ;, newlines and globs all stay literal text.
//
// Quote cannot carry a NUL byte (the remote side ends the string there);
// values from outside are refused by the Valid* functions before they get here.
func Quote(s string) string {
	if s == "" {
		return "''"
	}
	if isPlain(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func isPlain(s string) bool {
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("@%+=:,./_-", r):
		default:
			return false
		}
	}
	// A leading "-" is fine for the shell; "=" first could read as an
	// assignment only in the command position, which Args never are alone.
	return true
}
