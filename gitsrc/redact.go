package gitsrc

import "github.com/pushdeploy/pushdeploy/deploy"

// redactErr returns err with the password of repoURL blanked out of its
// message (deploy.RedactPassword); errors.Is and errors.As still see the
// original. go-git never gets the password in a URL (goGitURL), so this
// guards against what else may quote it.
func redactErr(err error, repoURL string) error {
	if err == nil {
		return nil
	}
	msg := deploy.RedactPassword(err.Error(), repoURL)
	if msg == err.Error() {
		return err
	}
	return &redactedError{msg: msg, err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
