package deploy

import (
	"errors"
	"fmt"
)

// ExitError is a command on a host that ended unsuccessfully: what every
// Conn returns for a non-zero exit or a signal, over SSH or on the `local`
// host alike, so that a step fails with the same message on either and
// the steps decide on Status (124: coreutils timeout, 75: the lock was
// busy).
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

// ExitStatus returns Status, as *ssh.ExitError and *exec.ExitError name it.
func (e *ExitError) ExitStatus() int { return e.Status }

// exitStatus returns the exit status of the *ExitError in err, and false
// when err holds none.
func exitStatus(err error) (int, bool) {
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Status, true
	}
	return 0, false
}
