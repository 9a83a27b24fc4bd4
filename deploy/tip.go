package deploy

import (
	"context"
	"log/slog"
	"time"
)

// tipWait bounds how long the end of a pinned deploy or a rollback waits
// for the branch tip its start began to read: a git server that does not
// answer must not hold up the end of a rollback for long. (The look-up's
// own context has the same bound, but go-git opens SSH connections
// without one: see gitsrc.Source.Resolve.)
const tipWait = 15 * time.Second

// tipLookup is one reading of the release branch's tip beside a
// deployment.
type tipLookup struct {
	done chan struct{}
	tip  string // set before done is closed; "" when the look-up failed
}

// lookUpTip starts reading the tip of branch for dep.BranchTip, beside
// the deployment: a deploy pinned to a commit (--commit, --from, a
// promoted app) or a rollback does not learn the tip otherwise, and
// polling must know what the branch was when it started. The deployment
// does not wait for it; finish records it (awaitTip). Without a Resolver
// nothing is read and the tip stays unknown.
func (d *Deployer) lookUpTip(ctx context.Context, log *slog.Logger, dep *Deployment, branch string) {
	if d.Resolver == nil {
		return
	}
	l := &tipLookup{done: make(chan struct{})}
	dep.mu.Lock()
	dep.tip = l
	dep.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), tipWait)
	go func() {
		defer close(l.done)
		defer cancel()
		rel, err := d.Resolver.Resolve(ctx, Push{Branch: branch})
		if err == nil {
			err = ValidCommit(rel.Commit)
		}
		if err != nil {
			// The deployment goes on: the tip matters to polling only,
			// which then leaves this app alone until the next deployment
			// (see Poller).
			log.Warn("branch tip not read: polling will not deploy over this deployment", "branch", branch, "error", err)
			return
		}
		l.tip = rel.Commit
	}()
}

// awaitTip returns the tip lookUpTip read for dep, waiting for it at most
// tipWait (it began with the deployment, so it has usually ended long
// before); "" when none was started, it failed, or it took too long.
func (dep *Deployment) awaitTip() string {
	dep.mu.Lock()
	l := dep.tip
	dep.tip = nil
	dep.mu.Unlock()
	if l == nil {
		return ""
	}
	t := time.NewTimer(tipWait)
	defer t.Stop()
	select {
	case <-l.done:
		return l.tip
	case <-t.C:
		return ""
	}
}
