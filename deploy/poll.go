package deploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"
)

// Record is the lasting record of deployments (history.Store), where the
// Poller reads which branch tip an app's last deployment or rollback
// started from. Safe for concurrent use.
type Record interface {
	// Deployments returns the deployments f selects, newest first,
	// without their hosts.
	Deployments(ctx context.Context, f Filter) ([]*Deployment, error)
}

// PollTurn decides which deployer polls an app when several share one
// record (DEPLOY_DATABASE_URL): one of them per round, so that the branch
// is read once per interval however many deployers run.
type PollTurn interface {
	// Take reports whether this deployer polls app in the round that
	// begins now and lasts round: among the deployers sharing the
	// record, at most one gets true for an app within round. An error
	// (the database cannot be reached) counts as no. Safe for
	// concurrent use.
	Take(ctx context.Context, app string, round time.Duration) (bool, error)
}

// SoleDeployer is the PollTurn of a deployer alone with its record
// (SQLite in its data folder): every round is its own.
type SoleDeployer struct{}

// Take returns true.
func (SoleDeployer) Take(context.Context, string, time.Duration) (bool, error) { return true, nil }

var _ PollTurn = SoleDeployer{}

// PollOutcome is how one round of a Poller ended, for the logs and the
// metrics.
type PollOutcome string

const (
	// PollQueued: the tip was new, a deployment of it (trigger poll) was
	// asked for.
	PollQueued PollOutcome = "queued"
	// PollCurrent: the tip is the one the app's last deployment or
	// rollback started from.
	PollCurrent PollOutcome = "current"
	// PollBusy: a deployment of the app is queued or running; it, or the
	// webhook of the next push, ships the tip.
	PollBusy PollOutcome = "busy"
	// PollPaused: no tip to compare with: the app has no deployment yet,
	// or its last one could not read the branch when it started. Polling
	// deploys nothing until the next deployment records a tip.
	PollPaused PollOutcome = "paused"
	// PollRefused: the app is promoted (DEPLOY_PROMOTE_FROM) and its
	// source has not deployed the tip everywhere yet; nothing is
	// recorded, the next round asks again.
	PollRefused PollOutcome = "refused"
	// PollNotOurs: another deployer took this round.
	PollNotOurs PollOutcome = "not_ours"
	// PollFailed: the branch, the record or the turn could not be read;
	// the next round tries again.
	PollFailed PollOutcome = "failed"
)

// Poller looks at an app's branch every Interval (±10%, so that apps and
// deployers do not poll in step) and asks its Worker for a deployment of
// the tip (trigger poll) when the tip is another commit than the one the
// branch had when the app's last deployment or rollback started: a push
// whose webhook was lost is deployed, and a rollback (or a deploy of an
// older commit) is never undone, since its own start recorded the tip it
// went back from (Deployment.BranchTip).
//
// A round does nothing while a deployment of the app is queued or
// running, when another deployer takes the round (Turn), or when the last
// deployment's tip is unknown (its look-up of the branch failed): then
// polling waits for the next deployment (a webhook, the API, the command
// line), on the safe side. An app without any deployment yet is not
// deployed by polling either.
//
// Fill the exported fields, then run Run in a goroutine.
type Poller struct {
	Worker *Worker
	// Record is where the app's deployments are recorded: required.
	Record Record
	// Turn says whether this deployer polls a round; nil: SoleDeployer.
	Turn PollTurn
	// Interval is the time between rounds, before jitter; > 0.
	Interval time.Duration
	// Logger, nil: the Worker's.
	Logger *slog.Logger
	// Polled, when set, hears the outcome of every round (the metrics).
	Polled func(app string, o PollOutcome)

	// after and random are the clock and the jitter's source; nil:
	// time.After and rand.Float64 (tests make rounds happen at will).
	after  func(time.Duration) <-chan time.Time
	random func() float64

	paused string // the deployment a paused round last warned about
}

// roundTimeout bounds one round (resolving the branch, reading the record).
const roundTimeout = time.Minute

// Run polls until ctx ends. The first round comes after a random part of
// one interval, so that apps started together spread out.
func (p *Poller) Run(ctx context.Context) error {
	if p.Worker == nil || p.Record == nil || p.Interval <= 0 {
		return errors.New("poller: Worker, Record and a positive Interval are required")
	}
	after := p.after
	if after == nil {
		after = time.After
	}
	wait := p.firstWait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-after(wait):
		}
		if p.Worker.closing() {
			// The app is being removed, or serve stops: the worker takes
			// no more requests.
			return nil
		}
		p.Round(ctx)
		wait = p.nextWait()
	}
}

func (p *Poller) rand() float64 {
	if p.random != nil {
		return p.random()
	}
	return rand.Float64()
}

// firstWait is between a tenth of the interval and the interval.
func (p *Poller) firstWait() time.Duration {
	return time.Duration(float64(p.Interval) * (0.1 + 0.9*p.rand()))
}

// nextWait is the interval, give or take a tenth.
func (p *Poller) nextWait() time.Duration {
	return time.Duration(float64(p.Interval) * (0.9 + 0.2*p.rand()))
}

func (p *Poller) logger() *slog.Logger {
	if p.Logger != nil {
		return p.Logger
	}
	return p.Worker.logger()
}

// Round polls once, logs what it found and returns it.
func (p *Poller) Round(ctx context.Context) PollOutcome {
	ctx, cancel := context.WithTimeout(ctx, roundTimeout)
	defer cancel()
	app := p.Worker.appName()
	o, err := p.round(ctx, app)
	if p.Polled != nil {
		p.Polled(app, o)
	}
	if err != nil {
		// No host is involved: the message names the repository or the
		// record.
		p.logger().Warn("poll failed: trying again next interval", "error", err)
	}
	return o
}

func (p *Poller) round(ctx context.Context, app string) (PollOutcome, error) {
	if o, err := p.take(ctx, app); o != "" {
		return o, err
	}
	last, ownTip, o, err := p.lastStarted(ctx, app)
	if o != "" {
		return o, err
	}
	if last == nil || last.tip == "" {
		p.warnPaused(last)
		return PollPaused, nil
	}
	d, promoteFrom := p.Worker.pollSetup()
	branch := d.branch()
	rel, err := d.resolve(ctx, slog.New(slog.DiscardHandler), Push{Branch: branch})
	if err != nil {
		return PollFailed, err
	}
	log := p.logger().With("branch", branch, "commit", rel.Commit)
	if rel.Commit == last.tip || rel.Commit == ownTip {
		log.Debug("poll: the branch has not moved since the last deployment", "deployment", last.id)
		return PollCurrent, nil
	}
	req := Request{Trigger: TriggerPoll, Actor: "poll", Push: Push{Branch: branch}, PayloadCommit: rel.Commit}
	if promoteFrom != "" {
		// Asked first, so that a tip the source app has not deployed
		// everywhere is not recorded as refused every round.
		gate := Gate{App: app, PromoteFrom: promoteFrom, Peers: p.Worker.Peers, Resolver: d.Resolver}
		adm, err := gate.Admit(ctx, Request{Push: Push{Branch: branch, Commit: rel.Commit}})
		if err != nil {
			return PollFailed, err
		}
		if adm.Refused != "" {
			log.Debug("poll: a new tip, not deployed yet by the app it is promoted from", "reason", adm.Refused)
			return PollRefused, nil
		}
	}
	t, err := p.Worker.Submit(ctx, req)
	var refused *RefusedError
	switch {
	case errors.As(err, &refused):
		return PollRefused, nil
	case err != nil:
		return PollFailed, fmt.Errorf("queue a deployment of %s: %w", rel.Short(), err)
	}
	log.Info("poll: a new tip on the branch, deploying it", "deployment", t.ID, "status", t.Status, "last_tip", last.tip)
	return PollQueued, nil
}

// take takes this round's turn; "" when it is this deployer's and its
// worker is idle, else why the round ends here.
func (p *Poller) take(ctx context.Context, app string) (PollOutcome, error) {
	turn := p.Turn
	if turn == nil {
		turn = SoleDeployer{}
	}
	// The turn first, also while this deployer is busy: so the deployer
	// that polls keeps its turn through its own deployments.
	if ok, err := turn.Take(ctx, app, p.Interval); err != nil {
		return PollFailed, fmt.Errorf("take the poll of app %s: %w", app, err)
	} else if !ok {
		p.logger().Debug("poll: another deployer polls the app")
		return PollNotOurs, nil
	}
	if p.Worker.busy() {
		p.logger().Debug("poll: a deployment of the app is queued or running here")
		return PollBusy, nil
	}
	return "", nil
}

// lastStarted is the app's last deployment that started, by the record,
// and beside it the tip of this worker's own last one (ownTip, "" when it
// is the record's last one or has no tip). The record is written behind
// the deployments (history.Recorder), so the worker's memory can be ahead
// of it: when the record has no deployment, or the same one as the
// memory, the memory's copy is last. Otherwise the record decides, and
// ownTip only holds a round back (a deploy or rollback just finished and
// not recorded yet is not undone): times are not compared, as they come
// from the clocks of different machines. The outcome is "" unless the
// round ends here.
func (p *Poller) lastStarted(ctx context.Context, app string) (last *started, ownTip string, o PollOutcome, err error) {
	last, o, err = lastStarted(ctx, p.Record, app)
	if o == PollBusy {
		p.logger().Debug("poll: a deployment of the app is queued or running (the record says)")
	}
	if o != "" {
		return nil, "", o, err
	}
	mem, busy := p.Worker.lastStarted()
	switch {
	case busy:
		return nil, "", PollBusy, nil // submitted since take looked
	case mem == nil:
		return last, "", "", nil
	case last == nil || mem.id == last.id:
		return mem, "", "", nil
	}
	return last, mem.tip, "", nil
}

// warnPaused tells once per deployment why polling deploys nothing.
func (p *Poller) warnPaused(last *started) {
	key := "no deployment"
	if last != nil {
		key = "deployment " + last.id
	}
	if p.paused == key {
		return
	}
	p.paused = key
	if last == nil {
		p.logger().Info("poll: the app has no deployment yet; polling deploys only after the first one")
		return
	}
	p.logger().Warn("poll: the last deployment could not read the branch tip when it started; polling deploys nothing until the next deployment",
		"deployment", last.id, "action", string(last.action))
}

// started is what polling needs of the last deployment that started.
type started struct {
	id     string
	action Action
	tip    string // "" unknown
}

// startedOf is what polling needs of d, false when d does not count: it
// never started (refused, cancelled), or it is a deploy of the tip that
// never learnt its commit (it changed nothing). Call it for deployments
// that are not queued or running.
func startedOf(d *Deployment) (*started, bool) {
	if d.Started.IsZero() {
		return nil, false
	}
	s := &started{id: d.ID, action: d.Action, tip: d.BranchTip}
	if s.tip == "" && d.Action != ActionRollback && d.Request.Push.Commit == "" {
		// A deploy of the tip: what it shipped was the tip (also for
		// deployments recorded before branch tips were).
		if s.tip = d.Release.Commit; s.tip == "" {
			return nil, false
		}
	}
	return s, true
}

// recordPage and recordRows bound the walk back through the record (a
// long run of refused or cancelled deployments): 500 rows, then polling
// waits as for an unknown tip.
const (
	recordPage  = 50
	recordPages = 10
)

// lastStarted finds the app's newest deployment or rollback that started
// (refused and cancelled ones never did) and the branch tip it started
// from. It answers PollBusy when one is queued or running (on another
// deployer, or the command line), and nil when none is found.
func lastStarted(ctx context.Context, rec Record, app string) (*started, PollOutcome, error) {
	f := Filter{App: app, Limit: recordPage}
	for range recordPages {
		list, err := rec.Deployments(ctx, f)
		if err != nil {
			return nil, PollFailed, fmt.Errorf("read the deployments of app %s: %w", app, err)
		}
		for _, d := range list {
			if d.Status == StatusQueued || d.Status == StatusRunning {
				return nil, PollBusy, nil
			}
			if s, ok := startedOf(d); ok {
				return s, "", nil
			}
		}
		if len(list) < recordPage {
			return nil, "", nil
		}
		last := list[len(list)-1]
		f.BeforeQueued, f.BeforeID = last.Queued, last.ID
	}
	return nil, "", nil
}

// busy tells whether a deployment of the worker is queued or running.
func (w *Worker) busy() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.running != nil || len(w.queue) > 0
}

// closing tells whether the worker takes no more requests (Close, or its
// Run has ended).
func (w *Worker) closing() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.closed
}

// lastStarted is the newest deployment of the worker's memory that
// counts for polling (see startedOf), nil when none does; busy when one
// is queued or running.
func (w *Worker) lastStarted() (s *started, busy bool) {
	for _, d := range w.List() {
		if d.Status == StatusQueued || d.Status == StatusRunning {
			return nil, true
		}
		if s, ok := startedOf(d); ok {
			return s, false
		}
	}
	return nil, false
}

// pollSetup is the Deployer and the promotion source a poll reads the
// branch with and checks a tip against.
func (w *Worker) pollSetup() (*Deployer, string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.Deployer, w.PromoteFrom
}
