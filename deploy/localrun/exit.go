package localrun

import (
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"syscall"
)

// ExitError is a local command that ended unsuccessfully. It reads like
// sshrun's, so that a step fails with the same message on either kind of
// host.
type ExitError struct {
	Status int    // exit status; -1 when killed by a signal
	Signal string // the signal's name without "SIG" (e.g. "KILL"), when killed by one
}

func (e *ExitError) Error() string {
	if e.Signal != "" {
		return "killed by signal " + e.Signal
	}
	return fmt.Sprintf("exit status %d", e.Status)
}

// ExitStatus returns the exit status (deploy checks for it).
func (e *ExitError) ExitStatus() int { return e.Status }

func exitError(err error) error {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return err
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return &ExitError{Status: -1, Signal: signalName(ws.Signal())}
	}
	return &ExitError{Status: ee.ExitCode()}
}

// signalNames are the names SSH uses for signals (RFC 4254, 6.10).
var signalNames = map[syscall.Signal]string{
	syscall.SIGABRT: "ABRT", syscall.SIGALRM: "ALRM", syscall.SIGFPE: "FPE", syscall.SIGHUP: "HUP",
	syscall.SIGILL: "ILL", syscall.SIGINT: "INT", syscall.SIGKILL: "KILL", syscall.SIGPIPE: "PIPE",
	syscall.SIGQUIT: "QUIT", syscall.SIGSEGV: "SEGV", syscall.SIGTERM: "TERM",
	syscall.SIGUSR1: "USR1", syscall.SIGUSR2: "USR2", syscall.SIGBUS: "BUS",
}

func signalName(s syscall.Signal) string {
	if n, ok := signalNames[s]; ok {
		return n
	}
	return strconv.Itoa(int(s))
}
