package deploy

import (
	"context"
	"errors"
	"fmt"
)

// Peers answers what promotion needs to know about the other apps of the
// same deployer (DEPLOY_PROMOTE_FROM, and requests with From). The server
// that runs one worker per app implements it; its methods must be safe for
// concurrent use.
type Peers interface {
	// DeployedEverywhere reports whether app deployed commit (a full
	// hash) successfully to every one of its hosts; when not, reason says
	// what is missing (e.g. "staging has not deployed 1a2b3c4 to web2").
	// err is for when that cannot be known (the history cannot be read).
	DeployedEverywhere(ctx context.Context, app, commit string) (ok bool, reason string, err error)
	// Running returns the one commit (a full hash) every host of app runs
	// now; an error when the app is unknown (a *RequestError, the
	// requester's mistake), a host cannot be read, or hosts disagree.
	Running(ctx context.Context, app string) (string, error)
}

// RefusedError is a deploy request that promotion turned down: the app has
// DEPLOY_PROMOTE_FROM and its source app has not deployed the commit to
// every one of its hosts. The request is recorded all the same, as
// deployment ID with StatusRefused and the reason as its error, so that the
// history, the notifications and the forge's build status tell it. The
// webhook answers it 200 {"status":"refused","deployment":ID,"reason":…}
// (a forge must not retry it), the API 409 with the reason.
type RefusedError struct {
	ID     string
	Reason string
}

func (e *RefusedError) Error() string { return "refused: " + e.Reason }

// Gate decides what a deploy request of one app ships, before anything is
// queued: it resolves the commit where that must be known now and, for an
// app with PromoteFrom, asks Peers whether that app deployed it everywhere.
// Worker.Submit goes through it; a command line deployment of a promoted
// app goes through it too, so that every way in is checked alike.
type Gate struct {
	// App is the app requests are for (empty: DefaultApp).
	App string
	// PromoteFrom, when set, is the app whose successfully deployed
	// commits are the only ones App deploys.
	PromoteFrom string
	// Peers answers for PromoteFrom and for requests with From; it may be
	// nil when neither is used.
	Peers    Peers
	Resolver Resolver
}

// Admission is what Gate.Admit made of a request.
type Admission struct {
	// Request is the request to carry out, pinned to one commit (its
	// Push.Commit the full hash) when the commit was resolved for it.
	Request Request
	// Release is the resolved release; zero when the tip is left to be
	// resolved when the deployment starts.
	Release Release
	// Commit is what to tell the requester (Ticket.Commit).
	Commit string
	// Refused, when not empty, is why the request must not run: record
	// it with Deployer.Refuse.
	Refused string
}

// Admit checks deploy request req (not a rollback: those are never
// gated). A commit not on the branch is a *CommitError; From naming this
// app, From without Peers, or From with a commit, a *RequestError. A
// request for the tip is resolved now when the app is promoted (the check
// needs the commit, and the deployment is pinned to the commit checked) or
// when the API asked (to tell the caller the tip and to show the
// repository can be reached); otherwise, as for a webhook, the tip is
// resolved when the deployment starts, so that the newest push ships.
// Other errors (the repository or a peer cannot be reached) are the
// deployer's.
func (g Gate) Admit(ctx context.Context, req Request) (Admission, error) {
	if req.From != "" {
		c, err := g.running(ctx, req)
		if err != nil {
			return Admission{}, err
		}
		req.Push.Commit = c
	}
	a := Admission{Request: req, Commit: req.PayloadCommit}
	switch {
	case req.Push.Commit != "":
		if err := ValidCommitPrefix(req.Push.Commit); err != nil {
			return Admission{}, &CommitError{Commit: req.Push.Commit, Branch: req.Push.Branch, Reason: err.Error()}
		}
	case g.PromoteFrom == "" && req.Trigger != TriggerAPI:
		return a, nil
	}
	rel, err := g.Resolver.Resolve(ctx, req.Push)
	if err != nil {
		if req.From != "" {
			return Admission{}, fmt.Errorf("from %s: %w", req.From, err)
		}
		return Admission{}, err
	}
	if err := ValidCommit(rel.Commit); err != nil {
		return Admission{}, fmt.Errorf("resolve: %w", err)
	}
	a.Release, a.Commit = rel, rel.Commit
	if req.Push.Commit != "" || g.PromoteFrom != "" {
		a.Request.Push.Commit = rel.Commit
	}
	if g.PromoteFrom != "" {
		a.Refused, err = g.deployedEverywhere(ctx, rel.Commit)
		if err != nil {
			return Admission{}, err
		}
	}
	return a, nil
}

// running is the commit the hosts of req.From run now.
func (g Gate) running(ctx context.Context, req Request) (string, error) {
	app := g.App
	if app == "" {
		app = DefaultApp
	}
	switch {
	case req.From == app:
		return "", &RequestError{Msg: fmt.Sprintf("from: %s is this app; name the app to promote from", req.From)}
	case req.Push.Commit != "":
		return "", &RequestError{Msg: "from and commit: give one of them (from deploys the commit the other app runs)"}
	case g.Peers == nil:
		return "", &RequestError{Msg: fmt.Sprintf("from: this deployer serves no other app than %s", app)}
	}
	c, err := g.Peers.Running(ctx, req.From)
	if err != nil {
		return "", fmt.Errorf("from %s: %w", req.From, err)
	}
	// The peer is trusted, but the commit goes on to the resolver and
	// into remote commands: check its form here too.
	if err := ValidCommit(c); err != nil {
		return "", fmt.Errorf("from %s: %w", req.From, err)
	}
	return c, nil
}

// deployedEverywhere asks whether PromoteFrom deployed commit to all its
// hosts: "" when it did, else the reason to refuse.
func (g Gate) deployedEverywhere(ctx context.Context, commit string) (string, error) {
	if g.Peers == nil {
		// Never deploy unchecked: a promoted app without peers is a
		// wiring mistake, not a reason to let everything through.
		return "", fmt.Errorf("promote from %s: no other apps are known to check the commit against", g.PromoteFrom)
	}
	ok, reason, err := g.Peers.DeployedEverywhere(ctx, g.PromoteFrom, commit)
	switch {
	case err != nil:
		return "", fmt.Errorf("promote from %s: %w", g.PromoteFrom, err)
	case ok:
		return "", nil
	case reason == "":
		reason = fmt.Sprintf("%s has not deployed %s to every one of its hosts", g.PromoteFrom, Release{Commit: commit}.Short())
	}
	return reason, nil
}

// Refuse records dep, a deploy request that must not run, as refused for
// reason: it ends at once with StatusRefused and the reason as its error,
// and its observers (d.Observer unless dep has its own) hear it like any
// deployment's end. rel is the release it asked for (zero when unknown),
// hosts the hosts it would have gone to (recorded as skipped). The
// returned error names dep and the reason.
func (d *Deployer) Refuse(dep *Deployment, rel Release, hosts []Host, reason string) *RefusedError {
	d.observe(dep)
	now := d.now()
	dep.update(func() {
		dep.Release = rel
		dep.Finished, dep.Status, dep.Err = now, StatusRefused, errors.New(reason)
		dep.Hosts = nil
		for _, h := range hosts {
			dep.Hosts = append(dep.Hosts, &HostResult{Host: h, Status: StatusSkipped})
		}
	})
	d.logger().Warn("deployment refused", "deployment", dep.ID, "commit", rel.Commit, "reason", reason)
	return &RefusedError{ID: dep.ID, Reason: reason}
}
