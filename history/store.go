// Package history owns the lasting record of deployments, written by a
// Recorder that follows deployments through their events, and read by the
// API, the status page and promotion. The record lives in one of two
// engines behind the Store interface: an embedded SQLite database
// (modernc.org/sqlite, pure Go) in the deployer's data folder, the
// default for one deployer (Open), or PostgreSQL, shared by several
// deployers (OpenPostgres). The package historytest holds the tests both
// must pass.
package history

import (
	"context"
	"log/slog"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// Store is the lasting record of deployments. Its methods are safe for
// concurrent use, also by several processes on one database (serve and a
// CLI deploy; several deployers on PostgreSQL). Every error names what
// failed; none is a sentinel to decide on, except where said.
type Store interface {
	// Save writes a snapshot of dep, owned by o: the deployment's row,
	// and its hosts and steps as the snapshot has them (replacing what
	// was there). A deployment without an App is recorded under
	// deploy.DefaultApp. A queued snapshot of a deployment that the
	// record has as started (another deployer runs it) changes nothing;
	// nor does any snapshot of a deployment the record has finished by
	// another owner than o (the deployer that took over from o, which
	// lost its claim, recorded it interrupted).
	Save(ctx context.Context, dep *deploy.Deployment, o Owner) error
	// SaveHost records a host's status in a deployment; idx is its place
	// in the deployment's host list. SaveHost and SaveStep leave a
	// deployment another owner than Owner() finished as it is.
	SaveHost(ctx context.Context, id, host string, idx int, status deploy.Status) error
	// SaveStep records step number idx of host in a deployment, as it
	// starts or ends.
	SaveStep(ctx context.Context, id, host string, idx int, st deploy.StepResult) error

	// Interrupt records deployment id as interrupted, with reason as its
	// error, when it is queued or running (with its running hosts and
	// steps); a finished one is left as it is. found is false when there
	// is no deployment id. Another deployer calls it for one that died
	// (deploy.Interrupter); the row is then Owner()'s.
	Interrupt(ctx context.Context, id, reason string) (found bool, err error)

	// Deployments returns the deployments f selects, newest first,
	// without their hosts.
	Deployments(ctx context.Context, f deploy.Filter) ([]*deploy.Deployment, error)
	// Deployment returns one deployment with its hosts and their steps;
	// false (and no error) when there is none with that id.
	Deployment(ctx context.Context, id string) (*deploy.Deployment, bool, error)
	// HostsDeployed returns the names of the hosts (sorted, each once)
	// on which a finished deploy of commit (the full hash) in app ended
	// succeeded. Promotion (DEPLOY_PROMOTE_FROM) compares them with the
	// source app's hosts.
	HostsDeployed(ctx context.Context, app, commit string) ([]string, error)
	// Latest returns the newest deployment of app (by queued time, then
	// id), without its hosts, whatever its status; false when app has
	// none.
	Latest(ctx context.Context, app string) (*deploy.Deployment, bool, error)

	// Prune deletes the deployments (with their hosts and steps) that
	// ended more than Options.Days ago, and returns how many. Running
	// and queued deployments are never pruned.
	Prune(ctx context.Context) (int, error)
	// Check proves the record can be written (the health endpoint).
	Check(ctx context.Context) error
	// Owner is the owner this store records for the deployments of this
	// process (Options.Self).
	Owner() Owner
	// Close closes the store.
	Close() error
}

// Options tune a Store.
type Options struct {
	// Days is how long finished deployments are kept; 0 keeps all.
	Days int
	// Logger hears what Open did to old rows (interrupted, pruned).
	Logger *slog.Logger
	// Self is this process, recorded as the owner of the deployments it
	// runs; zero means the real process (Self()).
	Self Owner
	// Alive tells whether another process still runs; nil means a look
	// at /proc (see Owner.Alive).
	Alive func(Owner) bool
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// withDefaults fills what opts leaves unset, and returns the logger.
func (opts Options) withDefaults() (Options, *slog.Logger) {
	if opts.Self == (Owner{}) {
		opts.Self = Self()
	}
	if opts.Alive == nil {
		self := opts.Self
		opts.Alive = func(o Owner) bool { return o.Alive(self) }
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return opts, log
}
