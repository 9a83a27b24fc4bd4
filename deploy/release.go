package deploy

import (
	"fmt"
	"time"
)

// Push is what someone asked to deploy: the branch, and optionally one
// commit on it. It comes from the CLI (--commit), the API or a forge's
// webhook, so none of it is trusted until a Resolver has checked it.
type Push struct {
	// Branch is the branch the push was made to.
	Branch string
	// Commit, when set, is a full or abbreviated commit hash that must be
	// on Branch; empty means the branch tip.
	Commit string
}

// Release is a commit checked against the repository: the one commit that
// every host of a deployment receives, even if the branch moves meanwhile.
type Release struct {
	// RepoURL is the repository the hosts fetch from.
	RepoURL string
	// Branch is the release branch.
	Branch string
	// Commit is the full commit hash.
	Commit string
	// GitHostKeys holds known_hosts lines for the git server, as verified
	// by the Resolver while it resolved the branch. Hosts check the git
	// server against exactly these keys when they clone. Empty when the
	// repository is not reached over SSH.
	GitHostKeys []string
}

// Short returns the 7-character abbreviation of the commit.
func (r Release) Short() string {
	if len(r.Commit) < 7 {
		return r.Commit
	}
	return r.Commit[:7]
}

// ReleaseName is the folder name of a release under releases/: the UTC
// date-time of the deployment and the 7-character commit.
func ReleaseName(t time.Time, commit string) string {
	short := commit
	if len(short) > 7 {
		short = short[:7]
	}
	return t.UTC().Format("20060102150405") + "-" + short
}

// CommitError is a requested commit that cannot be deployed: not on the
// release branch, or an abbreviation that matches several commits. It is
// the requester's mistake, not a failure of the deployer.
type CommitError struct {
	Commit string
	Branch string
	// Reason, when set, replaces the default "not on branch" message.
	Reason string
}

func (e *CommitError) Error() string {
	if e.Reason != "" {
		return e.Reason
	}
	return fmt.Sprintf("commit %s is not on branch %s", e.Commit, e.Branch)
}
