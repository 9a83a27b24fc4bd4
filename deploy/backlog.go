package deploy

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Backlog is the durable queue of deployments a Worker shares with every
// other deployer of the same database (queue.Backlog adapts queue.Queue:
// SQLite for one deployer, PostgreSQL for several). With a Backlog, a
// request is committed before Submit answers, and at most one deployment
// of an app runs at a time across all the deployers; see Worker.Backlog.
// Its methods are safe for concurrent use, from several processes.
type Backlog interface {
	// Enqueue commits req as deployment id of app before it returns, or
	// joins the waiting deployment that would do exactly the same
	// (Status "coalesced", that deployment's id), or recognises a
	// delivery id seen before by any deployer ("duplicate"). Errors:
	// ErrQueueFull, a *RequestError, or an *UnavailableError when the
	// database cannot be reached (nothing was committed).
	Enqueue(ctx context.Context, app, id string, req Request) (Ticket, error)
	// Claim takes app's oldest waiting deployment for this deployer.
	// ErrNoJob when none waits, or when a deployment of the app runs
	// (on any deployer) or is reserved for a command line whose turn it
	// is.
	Claim(ctx context.Context, app string) (Lease, error)
	// Expire ends the claims whose lease ran out (their deployer died, or
	// lost the database for longer than a lease) and returns them, each
	// to exactly one caller however many deployers expire at once: that
	// caller records them as interrupted. The apps' next deployments can
	// be claimed from then on.
	Expire(ctx context.Context) ([]BacklogJob, error)
	// Pending returns app's running deployment (nil when none runs, on
	// any deployer) and its waiting ones, oldest first.
	Pending(ctx context.Context, app string) (running *BacklogJob, waiting []BacklogJob, err error)
}

// BacklogJob is one deployment in a Backlog.
type BacklogJob struct {
	ID      string
	App     string
	Request Request
	Queued  time.Time
	// Owner is the deployer that runs it (or ran it last, or for a
	// command line's deployment, the one it is reserved for); "" before
	// any claim.
	Owner string
	// Expires is the end of a running job's lease (database clock).
	Expires time.Time
}

// Lease is a claimed deployment: this deployer's alone to run until it
// finishes or the claim is lost.
type Lease interface {
	// Job is the deployment claimed.
	Job() BacklogJob
	// Hold keeps the claim alive (renews it) until stop is called. held
	// ends, with cause ErrClaimLost, as soon as the claim may no longer
	// be this deployer's (another may take the app over): then stop the
	// deployment, and switch no more hosts. Call stop before Finish.
	Hold(ctx context.Context) (held context.Context, stop func())
	// Finish records the outcome and frees the app for its next
	// deployment. ErrClaimLost when another deployer ended the claim
	// first (it recorded the deployment as interrupted).
	Finish(ctx context.Context, outcome Status) error
}

// Interrupter is the lasting record of deployments (history.Store), for
// the deployments whose deployer stopped before they finished.
type Interrupter interface {
	// Interrupt records deployment id as interrupted, with reason as its
	// error, when the record has it queued or running; a finished one is
	// left as it is. found is false when the record has no deployment id.
	Interrupt(ctx context.Context, id, reason string) (found bool, err error)
}

var (
	// ErrNoJob means no deployment of the app can be claimed now.
	ErrNoJob = errors.New("no deployment to claim")
	// ErrClaimLost means the claim on a deployment is no longer this
	// deployer's: its lease ended, and another deployer may have taken the
	// app over.
	ErrClaimLost = errors.New("the claim on the deployment was lost (its lease ended): another deployer may take the app over")
)

// LapsedError is the cause of a claim lost because no renewal reached
// the database for most of its lease (a Lease's Hold ends with it): the
// database could not be reached For that long. It is ErrClaimLost.
type LapsedError struct {
	For time.Duration
}

func (e *LapsedError) Error() string {
	return fmt.Sprintf("the claim on the deployment was lost: the database could not be reached for %s", e.For.Round(time.Second))
}

// Is makes a LapsedError ErrClaimLost.
func (e *LapsedError) Is(target error) bool { return target == ErrClaimLost }

// claimLostWhy says, for the deployment's messages, why its claim was
// lost (cause: the end of its Hold).
func claimLostWhy(cause error) string {
	if lapsed, ok := errors.AsType[*LapsedError](cause); ok {
		return fmt.Sprintf("the database could not be reached for %s", lapsed.For.Round(time.Second))
	}
	return "its lease ended"
}

// claimLostStop is the stop of a deployment whose claim was lost (cause:
// the end of its Hold): its skipped steps say so, not that the deployer
// is shutting down.
func claimLostStop(cause error) error {
	return &reasonError{
		text: fmt.Sprintf("stopped: this deployer lost its claim on the app (%s); another deployer may take it over", claimLostWhy(cause)),
		errs: []error{ErrStopped, cause},
	}
}

// claimLostEnd is the error of a deployment whose claim was lost (cause:
// fenced) before it finished.
func claimLostEnd(cause error) error {
	return &reasonError{
		text: fmt.Sprintf("interrupted: this deployer lost its claim on the app (%s) before the deployment finished; another deployer may take it over", claimLostWhy(cause)),
		errs: []error{cause},
	}
}

// reasonError is an error with a text of its own that wraps errs (for
// errors.Is and errors.As) without repeating their texts.
type reasonError struct {
	text string
	errs []error
}

func (e *reasonError) Error() string   { return e.text }
func (e *reasonError) Unwrap() []error { return e.errs }

// UnavailableError is a Backlog that cannot be reached: nothing was
// committed, and the requester should try again later (the webhook
// answers 503 with Retry-After).
type UnavailableError struct {
	// Database names the database, without its password.
	Database string
	Err      error
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("the deployment queue's database %s cannot be reached: %v", e.Database, e.Err)
}

func (e *UnavailableError) Unwrap() error { return e.Err }

// Fence makes dep stop before it switches or restarts a host once held
// has ended (a Lease's Hold): a deployer that lost its claim never
// changes what hosts serve after that, since another deployer may be
// deploying the app by then. Call it before the deployment runs.
func (d *Deployment) Fence(held context.Context) {
	d.mu.Lock()
	d.fence = held
	d.mu.Unlock()
}

// fenced is the error that stops a deployment whose claim is lost, nil
// while it holds it (or has no claim: the command line without a
// database).
func (d *Deployment) fenced() error {
	d.mu.Lock()
	fence := d.fence
	d.mu.Unlock()
	if fence == nil || fence.Err() == nil {
		return nil
	}
	cause := context.Cause(fence)
	if errors.Is(cause, ErrClaimLost) {
		return cause
	}
	return fmt.Errorf("%w: %w", ErrClaimLost, cause)
}
