package localrun

import (
	"errors"
	"os/exec"
	"strconv"
	"syscall"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// exitError turns the *exec.ExitError in err into a *deploy.ExitError,
// named as sshrun names a remote one, so that a step fails with the same
// message on either kind of host.
func exitError(err error) error {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return err
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return &deploy.ExitError{Status: -1, Signal: signalName(ws.Signal())}
	}
	return &deploy.ExitError{Status: ee.ExitCode()}
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
