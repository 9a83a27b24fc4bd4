package cli

// poll.go is serve's polling (DEPLOY_POLL_INTERVAL): a deploy.Poller per
// app whose interval is not 0, beside the app's worker, asking it for
// deployments (trigger poll) as a webhook would. With several deployers
// on one database, the deployers take turns in it (queue.Queue.TakeTurn):
// one of them polls an app at a time.

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pushdeploy/pushdeploy/config"
	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/queue"
)

// turnTaker is where the deployers sharing a database take turns
// (queue.Queue). Safe for concurrent use.
type turnTaker interface {
	// TakeTurn takes or keeps the turn key for ttl, by the database's
	// clock, and returns who holds it now (Owner when it was taken).
	TakeTurn(ctx context.Context, key string, ttl time.Duration) (holder string, err error)
	// ReleaseTurn gives the turn key up if this deployer holds it.
	ReleaseTurn(ctx context.Context, key string) error
	// Owner is this deployer's name in the turns.
	Owner() string
}

var _ turnTaker = (*queue.Queue)(nil)

// openTurns opens where the deployers take turns: the queue's tables in
// DEPLOY_DATABASE_URL. Without it this deployer is alone with its
// history (SQLite in DEPLOY_DATA_DIR): nil, and every turn is its own.
func openTurns(ctx context.Context, cfg *config.Config) (turnTaker, func(), error) {
	if cfg.DatabaseURL == "" {
		return nil, func() {}, nil
	}
	q, err := queue.OpenPostgres(ctx, cfg.DatabaseURL, queue.Options{Owner: nodeName(cfg)})
	if err != nil {
		return nil, nil, fmt.Errorf("DEPLOY_DATABASE_URL: %w", err)
	}
	return q, func() { q.Close() }, nil
}

// turnTTL is how long a poll turn lasts after it was taken: two rounds
// and some, so that the deployer that polls keeps it from round to round
// (jitter, and a slow round, included); when it stops, another deployer
// takes over within that.
func turnTTL(round time.Duration) time.Duration { return 2*round + 10*time.Second }

// sharedTurn is the deploy.PollTurn of an app on a deployer sharing its
// database: the app's turn in turnTaker. It logs when the turn changes
// hands, as this deployer sees it.
type sharedTurn struct {
	turns turnTaker
	log   *slog.Logger

	mu     sync.Mutex
	holder string // as the last take saw it; "" before the first
}

var _ deploy.PollTurn = (*sharedTurn)(nil)

// Take takes app's poll turn for this round.
func (s *sharedTurn) Take(ctx context.Context, app string, round time.Duration) (bool, error) {
	holder, err := s.turns.TakeTurn(ctx, "poll/"+app, turnTTL(round))
	if err != nil {
		return false, err
	}
	self := s.turns.Owner()
	s.mu.Lock()
	changed := holder != s.holder
	s.holder = holder
	s.mu.Unlock()
	switch {
	case !changed || holder == "": // "": given up just now; the next round takes it
	case holder == self:
		s.log.Info("poll: this deployer polls the app's branch now", "deployer", self)
	default:
		s.log.Info("poll: another deployer polls the app's branch", "deployer", self, "polled_by", holder)
	}
	return holder == self, nil
}

// release gives app's turn up when this deployer holds it (its poller
// has ended): another deployer takes it at its next round rather than
// after the turn's ttl.
func (s *sharedTurn) release(app string) {
	s.mu.Lock()
	held := s.holder == s.turns.Owner()
	s.holder = ""
	s.mu.Unlock()
	if !held {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.turns.ReleaseTurn(ctx, "poll/"+app); err != nil {
		s.log.Warn("poll: the turn was not given up: another deployer takes it once it has expired", "error", err)
		return
	}
	s.log.Info("poll: this deployer no longer polls the app's branch", "deployer", s.turns.Owner())
}

// polling starts and stops serve's pollers, one per app worker whose
// DEPLOY_POLL_INTERVAL is not 0. A nil *polling polls nothing. Safe for
// concurrent use.
type polling struct {
	record deploy.Record
	turns  turnTaker // nil: this deployer is alone (deploy.SoleDeployer)

	mu   sync.Mutex
	runs map[*deploy.Worker]*pollRun
}

// pollRun is the polling of one worker.
type pollRun struct {
	ctx    context.Context // the worker's: the poller ends with it
	app    *config.App     // the configuration in effect
	cancel context.CancelFunc
	wg     sync.WaitGroup // the poller goroutines, also one just replaced
}

func newPolling(record deploy.Record, turns turnTaker) *polling {
	return &polling{record: record, turns: turns, runs: map[*deploy.Worker]*pollRun{}}
}

// start polls app's branch for w until ctx ends (none when app's interval
// is 0). The returned func stops the polling and waits for it.
func (p *polling) start(ctx context.Context, w *deploy.Worker, app *config.App) (stop func()) {
	if p == nil {
		return func() {}
	}
	run := &pollRun{ctx: ctx, app: app}
	p.mu.Lock()
	p.runs[w] = run
	p.startLocked(run, w)
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		if run.cancel != nil {
			run.cancel()
		}
		delete(p.runs, w)
		p.mu.Unlock()
		run.wg.Wait()
	}
}

// update gives w's polling app's new configuration (SIGHUP): a changed
// interval starts it again (or stops it, at 0); the branch and the hosts
// come from the worker, at each round.
func (p *polling) update(w *deploy.Worker, app *config.App) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	run := p.runs[w]
	if run == nil {
		return
	}
	old := run.app
	run.app = app
	if old.PollInterval == app.PollInterval {
		return
	}
	if run.cancel != nil {
		// Not waited for: a round under way ends with its context, and
		// the next one starts after a part of an interval.
		run.cancel()
		run.cancel = nil
	}
	p.startLocked(run, w)
}

// startLocked starts run's poller, when its app polls.
func (p *polling) startLocked(run *pollRun, w *deploy.Worker) {
	every := run.app.PollInterval
	if every <= 0 {
		return
	}
	var turn deploy.PollTurn = deploy.SoleDeployer{}
	var shared *sharedTurn
	if p.turns != nil {
		shared = &sharedTurn{turns: p.turns, log: w.Logger}
		turn = shared
	}
	poller := &deploy.Poller{Worker: w, Record: p.record, Turn: turn, Interval: every, Logger: w.Logger}
	ctx, cancel := context.WithCancel(run.ctx)
	run.cancel = cancel
	w.Logger.Info("polling the branch", "every", every.String(), "shared", p.turns != nil)
	app := run.app.Name
	run.wg.Go(func() {
		if err := poller.Run(ctx); err != nil {
			w.Logger.Error("polling stopped", "error", err)
		}
		if shared != nil {
			shared.release(app)
		}
	})
}
