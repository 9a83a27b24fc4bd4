package queue

import (
	"context"
	"errors"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// Backlog is a Queue as a deploy.Worker uses it (deploy.Backlog), and the
// claims it gives as deploy.Leases.
type Backlog struct {
	Q *Queue
	// Database names the database in errors, without its password
	// (history.RedactURL; the file for SQLite).
	Database string
}

var _ deploy.Backlog = (*Backlog)(nil)

// Enqueue is Queue.Enqueue; an error of the database's (it cannot be
// reached, or it fails) is a *deploy.UnavailableError: nothing was
// committed, the requester should try again.
func (b *Backlog) Enqueue(ctx context.Context, app, id string, req deploy.Request) (deploy.Ticket, error) {
	t, err := b.Q.Enqueue(ctx, app, id, req)
	var re *deploy.RequestError
	switch {
	case err == nil, errors.Is(err, ErrQueueFull), errors.As(err, &re), errors.Is(err, context.Canceled):
		return t, err
	}
	return t, &deploy.UnavailableError{Database: b.Database, Err: err}
}

// Claim is Queue.Claim; deploy.ErrNoJob when nothing can be claimed now
// (none waits, or the app is busy).
func (b *Backlog) Claim(ctx context.Context, app string) (deploy.Lease, error) {
	c, err := b.Q.Claim(ctx, app)
	var busy *BusyError
	if errors.Is(err, ErrEmpty) || errors.As(err, &busy) {
		return nil, deploy.ErrNoJob
	}
	if err != nil {
		return nil, err
	}
	return &Lease{q: b.Q, C: c}, nil
}

// Expire is Queue.Expire.
func (b *Backlog) Expire(ctx context.Context) ([]deploy.BacklogJob, error) {
	jobs, err := b.Q.Expire(ctx)
	out := make([]deploy.BacklogJob, 0, len(jobs))
	for _, j := range jobs {
		out = append(out, backlogJob(j))
	}
	return out, err
}

// Pending is Queue.Pending.
func (b *Backlog) Pending(ctx context.Context, app string) (*deploy.BacklogJob, []deploy.BacklogJob, error) {
	running, waiting, err := b.Q.Pending(ctx, app)
	if err != nil {
		return nil, nil, err
	}
	var r *deploy.BacklogJob
	if running != nil {
		j := backlogJob(running)
		r = &j
	}
	out := make([]deploy.BacklogJob, 0, len(waiting))
	for _, j := range waiting {
		out = append(out, backlogJob(j))
	}
	return r, out, nil
}

func backlogJob(j *Job) deploy.BacklogJob {
	owner := j.Owner
	if j.State == StateWaiting && j.ReservedBy != "" {
		owner = j.ReservedBy
	}
	return deploy.BacklogJob{ID: j.ID, App: j.App, Request: j.Request, Queued: j.Queued, Owner: owner, Expires: j.Expires}
}

// Lease is a Claim as a deploy.Lease.
type Lease struct {
	q *Queue
	C *Claim
}

var _ deploy.Lease = (*Lease)(nil)

// NewLease makes c, claimed through q (Wait, ClaimNow), a deploy.Lease.
func NewLease(q *Queue, c *Claim) *Lease { return &Lease{q: q, C: c} }

// Job is the claimed job.
func (l *Lease) Job() deploy.BacklogJob { return backlogJob(&l.C.Job) }

// Hold is Queue.Hold: held's cause is ErrLost (deploy.ErrClaimLost).
func (l *Lease) Hold(ctx context.Context) (context.Context, func()) { return l.q.Hold(ctx, l.C) }

// Finish is Queue.Finish.
func (l *Lease) Finish(ctx context.Context, outcome deploy.Status) error {
	return l.q.Finish(ctx, l.C, outcome)
}
