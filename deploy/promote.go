package deploy

import "context"

// Peers answers what promotion needs to know about the other apps of the
// same deployer (DEPLOY_PROMOTE_FROM, and requests with From). The server
// that runs one worker per app implements it.
type Peers interface {
	// DeployedEverywhere reports whether app deployed commit successfully
	// to every one of its hosts; when not, reason says what is missing
	// (e.g. "staging has not deployed 1a2b3c4 to web2").
	DeployedEverywhere(ctx context.Context, app, commit string) (ok bool, reason string, err error)
	// Running returns the one commit every host of app runs now; an error
	// when the app is unknown, a host cannot be read, or hosts disagree.
	Running(ctx context.Context, app string) (string, error)
}
