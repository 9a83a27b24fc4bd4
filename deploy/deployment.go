package deploy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Status is where a deployment, a host or a step stands.
type Status string

const (
	StatusQueued     Status = "queued"
	StatusRunning    Status = "running"
	StatusSucceeded  Status = "succeeded"
	StatusFailed     Status = "failed"
	StatusSkipped    Status = "skipped"
	StatusCancelled  Status = "cancelled"   // queued, never started
	StatusRolledBack Status = "rolled back" // switched, then sent back when a later host failed
	// StatusInterrupted is a deployment whose deployer process ended
	// (killed, crashed) before it did: found so in the history at the
	// next start.
	StatusInterrupted Status = "interrupted"
	// StatusRefused is a request that was recorded but not carried out:
	// a promoted app asked to deploy a commit its source app has not
	// deployed everywhere (DEPLOY_PROMOTE_FROM). Err holds the reason.
	StatusRefused Status = "refused"
)

// DefaultApp is the name of the one app of a deployer configured without
// DEPLOY_APPS_DIR, in the API and the history.
const DefaultApp = "default"

// Request asks for a deployment: from the command line, the API or a
// forge's webhook.
type Request struct {
	// Action is ActionDeploy (the default when empty) or ActionRollback.
	Action Action
	// Release is, for a rollback, the release to go back to; empty means
	// each host's release before its current one.
	Release string
	// Trigger says who asked.
	Trigger Trigger
	// Provider, DeliveryID and Actor describe a webhook delivery (or, for
	// the API, who asked), for the record.
	Provider   string
	DeliveryID string
	Actor      string
	// Push is what to deploy: the branch, and optionally a commit on it.
	Push Push
	// PayloadCommit is the commit the forge's payload named. It is only
	// recorded: the deployed commit always comes from the repository.
	PayloadCommit string
	// Hosts, when not empty, limits the deployment to these hosts.
	Hosts []string
	// From, when set, names another app of the same deployer: deploy
	// exactly the commit that app's hosts run now (promotion; it must
	// also be on this app's branch).
	From string
}

// Deployment is one run of the deployer: one release shipped to a list of
// hosts, one after another. The Deployer updates it while it runs; read a
// running deployment only through Snapshot.
type Deployment struct {
	ID string
	// App is the app the deployment belongs to (DefaultApp for a
	// deployer with one app).
	App         string
	Action      Action
	Request     Request
	Release     Release
	ReleaseName string
	// BranchTip is the commit the release branch pointed to when the
	// deployment started ("" when it could not be read): polling
	// (DEPLOY_POLL_INTERVAL) deploys only another tip than this one of
	// the app's last deployment or rollback, so it never undoes one.
	BranchTip string
	Queued    time.Time
	Started   time.Time
	Finished  time.Time
	Status    Status
	Hosts     []*HostResult
	Err       error

	// Node names the deployer that ran the deployment (Deployer.Node:
	// DEPLOY_NODE_NAME, else HOSTNAME:PID), set as it starts: with
	// several deployers on one database, which of them it was.
	Node string

	mu       sync.Mutex
	stopping bool
	stopErr  error         // why it stops: the steps it skips fail with it
	stopped  chan struct{} // closed by Stop; made by stopC
	// fence, when set (Fence), ends when the deployment's claim on its
	// app is lost: no host is switched or restarted after that.
	fence context.Context
	// emitMu keeps events in order: held from a change until its events
	// are delivered. Taken before mu.
	emitMu   sync.Mutex
	observer Observer
	seen     observation
	// tip is the look-up of BranchTip under way beside the deployment
	// (see lookUpTip); nil when none.
	tip *tipLookup
}

// NewDeployment returns a queued deployment for req with a fresh id.
func NewDeployment(req Request, now time.Time) *Deployment {
	action := req.Action
	if action == "" {
		action = ActionDeploy
	}
	return &Deployment{ID: newID(now), Action: action, Request: req, Queued: now, Status: StatusQueued}
}

// Snapshot returns a deep copy, safe to read while the deployment runs.
func (d *Deployment) Snapshot() *Deployment {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.snapshotLocked()
}

func (d *Deployment) snapshotLocked() *Deployment {
	c := &Deployment{
		ID: d.ID, App: d.App, Action: d.Action, Request: d.Request, Release: d.Release, ReleaseName: d.ReleaseName,
		BranchTip: d.BranchTip, Queued: d.Queued, Started: d.Started, Finished: d.Finished, Status: d.Status, Err: d.Err,
		Node: d.Node,
	}
	c.Request.Hosts = append([]string(nil), d.Request.Hosts...)
	c.Release.GitHostKeys = append([]string(nil), d.Release.GitHostKeys...)
	for _, h := range d.Hosts {
		hc := *h
		hc.Steps = append([]StepResult(nil), h.Steps...)
		c.Hosts = append(c.Hosts, &hc)
	}
	return c
}

// FailedAt names the host and step where a finished deployment (a
// snapshot, or one read from the history) failed, when it failed in one:
// from its error, or else from the first failed step of its hosts.
func (d *Deployment) FailedAt() (host, step string) {
	var se *StepError
	if errors.As(d.Err, &se) {
		return se.Host, string(se.Step)
	}
	for _, h := range d.Hosts {
		for _, s := range h.Steps {
			if s.Status == StatusFailed {
				return h.Host.String(), string(s.Name)
			}
		}
	}
	return "", ""
}

// Stop asks a running deployment to stop before its next step: the step
// that runs now finishes (within its timeout), the host is cleaned up as
// after any failure, and no further host is started.
func (d *Deployment) Stop() { d.stopWith(ErrStopped) }

// stopWith is Stop, whose skipped steps fail with err (which wraps
// ErrStopped): why the deployment stops, when it is not the deployer
// shutting down. The first reason given stays.
func (d *Deployment) stopWith(err error) {
	d.mu.Lock()
	if !d.stopping {
		d.stopping, d.stopErr = true, err
		if d.stopped != nil {
			close(d.stopped)
		}
	}
	d.mu.Unlock()
}

// stopC is closed once Stop is called.
func (d *Deployment) stopC() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped == nil {
		d.stopped = make(chan struct{})
		if d.stopping {
			close(d.stopped)
		}
	}
	return d.stopped
}

func (d *Deployment) stopRequested() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stopping
}

// stopError is the error of a step a stop skips: ErrStopped, or why the
// deployment stops (stopWith).
func (d *Deployment) stopError() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopErr == nil {
		return ErrStopped
	}
	return d.stopErr
}

// update runs f with the deployment locked: every change the Deployer makes
// while the deployment may be read goes through it, and observers hear of
// each change it made.
func (d *Deployment) update(f func()) {
	d.emitMu.Lock()
	defer d.emitMu.Unlock()
	d.mu.Lock()
	f()
	evs := d.changesLocked(time.Now())
	d.mu.Unlock()
	d.deliver(evs)
}

// HostResult is what happened on one host.
type HostResult struct {
	Host     Host
	Status   Status
	Steps    []StepResult
	Duration time.Duration
}

// StepResult is one step on one host.
type StepResult struct {
	Name     Step
	Status   Status
	Started  time.Time
	Duration time.Duration
	// Output is the tail of the step's remote output (stdout and stderr).
	Output string
	Err    error
}

// ErrStopped is the error of a deployment stopped by Stop (the deployer is
// shutting down). A deployment stopped for another reason (its deployer
// lost its claim on the app) fails with an error that wraps it.
var ErrStopped = errors.New("stopped: the deployer is shutting down")

// StepError is a step that failed on a host. Its message names the host,
// the step, the error and the failing command's own output.
type StepError struct {
	Host   string
	Step   Step
	Err    error
	Output string // tail of the command's output
}

func (e *StepError) Error() string {
	msg := fmt.Sprintf("host %s: %s: %v", e.Host, e.Step, e.Err)
	if out := strings.TrimSpace(e.Output); out != "" {
		msg += "\n" + indent(out, "    ")
	}
	return msg
}

func (e *StepError) Unwrap() error { return e.Err }

func indent(s, prefix string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n")
}

// ErrBusy is returned when another deployer holds a host's lock for longer
// than the lock timeout.
var ErrBusy = errors.New("host busy")

// newID returns a deployment id: the start time and a random suffix, so
// ids sort by time and never collide between deployer processes. It only
// holds [0-9a-z-], so it is safe in file names on the hosts.
func newID(t time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return t.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}
