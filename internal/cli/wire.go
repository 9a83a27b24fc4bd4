package cli

// wire.go builds the adapters a command needs from the configuration: the
// deployer with its SSH dialers, the history store and recorder, the
// notifier, serve's guard and the metrics seeding. The domain (deploy/)
// never sees config; only this package copies values out of it.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"time"

	"github.com/pushdeploy/pushdeploy/config"
	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/deploy/localrun"
	"github.com/pushdeploy/pushdeploy/deploy/sshrun"
	"github.com/pushdeploy/pushdeploy/gitsrc"
	"github.com/pushdeploy/pushdeploy/history"
	"github.com/pushdeploy/pushdeploy/metrics"
	"github.com/pushdeploy/pushdeploy/notify"
	"github.com/pushdeploy/pushdeploy/queue"
	"github.com/pushdeploy/pushdeploy/webhook"
)

// mirrorDir is where app's bare git mirror is kept: DEPLOY_DATA_DIR/
// mirror.git for the one app configured without DEPLOY_APPS_DIR (as
// before there were apps), DEPLOY_DATA_DIR/apps/NAME/mirror.git for an app
// of the folder, so that no two apps share one.
func mirrorDir(app *config.App) string {
	if app.File == "" {
		return filepath.Join(app.DataDir, "mirror.git")
	}
	return filepath.Join(app.DataDir, "apps", app.Name, "mirror.git")
}

// newDeployer wires the adapters into app's Deployer. The SSH keys are
// loaded into in-memory agents only while hosts are connected
// (keyedDialer); the returned close function empties them for good as the
// command ends.
func newDeployer(app *config.App, log *slog.Logger) (*deploy.Deployer, func(), error) {
	cfg := app.Config
	checkDataDir(cfg.DataDir, log)
	// config.Validate has checked it; a Config built otherwise still gets
	// a clear error rather than one host at a time.
	batch, err := deploy.ParseRestartBatch(cfg.RestartBatch)
	if err != nil {
		return nil, nil, fmt.Errorf("DEPLOY_RESTART_BATCH: %w", err)
	}
	newRunner := func() (*sshrun.Runner, error) {
		return sshrun.New(sshrun.Config{
			Key:              cfg.SSHKeyPEM,
			Passphrase:       cfg.SSHKeyPassphrase,
			GitKey:           cfg.GitKeyPEM,
			GitKeyPassphrase: cfg.GitKeyPassphrase,
			KnownHosts:       cfg.KnownHosts,
			ConnectTimeout:   cfg.ConnectTimeout,
		})
	}
	// Once now, so that keys or a known_hosts file that cannot be used are
	// reported before anything starts.
	runner, err := newRunner()
	if err != nil {
		return nil, nil, err
	}
	runner.Close()
	dialer := sshrun.NewKeyedDialer(func() (deploy.Dialer, func(), error) {
		runner, err := newRunner()
		if err != nil {
			return nil, nil, err
		}
		return newHostDialer(runner, cfg.LocalUser), func() { runner.Close() }, nil
	})
	src := gitsrc.New(gitsrc.Config{
		URL:           cfg.RepoURL,
		Branch:        cfg.Branch,
		Key:           cfg.GitKeyPEM,
		KeyPassphrase: cfg.GitKeyPassphrase,
		KnownHosts:    cfg.KnownHosts,
		MirrorDir:     mirrorDir(app),
	})
	d := &deploy.Deployer{
		Dialer:        dialer,
		Resolver:      src,
		Logger:        log,
		Branch:        cfg.Branch,
		Root:          cfg.Root,
		Python:        cfg.Python,
		RestartCmd:    cfg.RestartCmd,
		AppProcesses:  cfg.AppProcesses,
		AppThreads:    cfg.AppThreads,
		LendGitKey:    len(cfg.GitKeyPEM) > 0,
		StepTimeout:   cfg.StepTimeout,
		LockTimeout:   cfg.LockTimeout,
		SharedPaths:   cfg.SharedPaths,
		KeepReleases:  cfg.KeepReleases,
		HealthURL:     cfg.HealthURL,
		HealthTimeout: cfg.HealthTimeout,
		RollbackAll:   cfg.RollbackOnFailure == "all",
		Parallel:      cfg.Parallel,
		RestartBatch:  batch,
		VenvReuse:     cfg.VenvReuse,
		Node:          nodeName(cfg),
		Now:           deployerClock(),
	}
	if cfg.Fetch == "push" {
		// The deployer streams each release: hosts need no git access, and
		// the deploy key is never lent.
		d.Archiver = src
		d.LendGitKey = false
	}
	return d, dialer.Close, nil
}

// nodeName is this process's name as a deployer, recorded with each
// deployment it runs and shown by the API and the metrics:
// DEPLOY_NODE_NAME, else HOSTNAME:PID.
func nodeName(cfg *config.Config) string {
	if cfg.NodeName != "" {
		return cfg.NodeName
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return fmt.Sprintf("%s:%d", host, os.Getpid())
}

// healthChecks are what serve's /healthz checks besides its state folder:
// the database of DEPLOY_DATABASE_URL (its URL, without the password,
// shown only with the API token), else the SQLite history.
func healthChecks(cfg *config.Config, st history.Store) []webhook.Check {
	if cfg.DatabaseURL != "" {
		return []webhook.Check{{Name: "database", Target: config.RedactDatabaseURL(cfg.DatabaseURL), Checker: st}}
	}
	return []webhook.Check{{Name: "history database", Target: filepath.Join(cfg.DataDir, history.FileName), Checker: st}}
}

// session is what a command that works on the hosts sets up: the
// configuration and its logger, the hosts --hosts names, and the deployer,
// whose keys close empties for good.
type session struct {
	log   *slog.Logger
	all   *config.Setup // every app, for promotion
	cfg   *config.App
	hosts []deploy.Host
	d     *deploy.Deployer
	close func()
}

// open reads the configuration, selects the hosts and builds the deployer.
func (c *common) open() (*session, error) {
	log, all, cfg, err := c.setupApp()
	if err != nil {
		return nil, err
	}
	hosts, err := c.selectedHosts(cfg.Config)
	if err != nil {
		return nil, err
	}
	d, closeKeys, err := newDeployer(cfg, log)
	if err != nil {
		return nil, err
	}
	return &session{log: log, all: all, cfg: cfg, hosts: hosts, d: d, close: closeKeys}, nil
}

// record runs run (a deploy or rollback on the session's hosts) recorded
// in the history and notified like serve's deployments (a dry run is
// neither). run is given the history, nil when it cannot be opened.
func (s *session) record(ctx context.Context, c *common, run func(context.Context, hostsDeployed) error) error {
	done, hist, err := observeCLI(ctx, c, s.cfg.Config, s.d, s.log)
	if err != nil {
		return err
	}
	defer done()
	return run(ctx, hist)
}

// observeCLI makes a command-line deployment recorded in the history and
// notified, like serve's, and watched (long steps, -v); the returned func
// flushes both (bounded) before the command exits. hist is the history
// (nil when it cannot be opened).
func observeCLI(ctx context.Context, c *common, cfg *config.Config, d *deploy.Deployer, log *slog.Logger) (done func(), hist hostsDeployed, err error) {
	waitNotified, err := notifyCLI(cfg, log, d)
	if err != nil {
		return nil, nil, err
	}
	hist, closeHistory, err := recordCLI(ctx, cfg, d, log)
	if err != nil {
		waitNotified()
		return nil, nil, err
	}
	w := newWatcher(log, c.stderr, c.verbose)
	addObserver(d, w)
	return func() {
		w.stop()
		closeHistory()
		waitNotified()
	}, hist, nil
}

// record is the deployment history of one command: the store, and the
// recorder that writes the deployments it hears of into it.
type record struct {
	store history.Store
	rec   *history.Recorder
}

// openHistory opens the history (marking the deployments of deployers that
// are gone as interrupted, and removing the rows older than
// DEPLOY_HISTORY_DAYS) and starts its recorder. pruneEvery > 0 prunes again
// that often, for a long-running serve.
func openHistory(ctx context.Context, cfg *config.Config, log *slog.Logger, pruneEvery time.Duration) (*record, error) {
	if cfg.DatabaseURL == "" {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("DEPLOY_DATA_DIR: %w", err)
		}
	}
	st, err := openStore(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	rec := history.NewRecorder(st, log)
	rec.PruneEvery = pruneEvery
	rec.Start()
	return &record{store: st, rec: rec}, nil
}

// openStore opens the history in PostgreSQL when DEPLOY_DATABASE_URL is
// set, else in DEPLOY_DATA_DIR's SQLite database (which must exist).
func openStore(ctx context.Context, cfg *config.Config, log *slog.Logger) (history.Store, error) {
	opts := history.Options{Days: cfg.HistoryDays, Logger: log}
	if cfg.DatabaseURL != "" {
		st, err := history.OpenPostgres(ctx, cfg.DatabaseURL, opts)
		if errors.Is(err, history.ErrBadURL) {
			// What config.Validate lets through and the driver refuses
			// (an sslmode it does not know): a configuration error too.
			return nil, &config.Error{Problems: []string{fmt.Sprintf("DEPLOY_DATABASE_URL: %q is %v", config.RedactDatabaseURL(cfg.DatabaseURL), history.ErrBadURL)}}
		}
		if history.Unreachable(err) {
			return nil, fmt.Errorf("DEPLOY_DATABASE_URL: %w (the database cannot be reached: is PostgreSQL running there, and are the host and port right?)", err)
		}
		if err != nil {
			return nil, fmt.Errorf("DEPLOY_DATABASE_URL: %w", err)
		}
		return st, nil
	}
	st, err := history.Open(ctx, cfg.DataDir, opts)
	if err != nil {
		return nil, fmt.Errorf("DEPLOY_DATA_DIR: %w", err)
	}
	return st, nil
}

// openServeHistory is openHistory for serve: a database it cannot reach
// is waited for (awaitDatabase), and serve starts once it is back.
func openServeHistory(ctx context.Context, cfg *config.Config, log *slog.Logger) (*record, error) {
	return awaitDatabase(ctx, cfg, log, dbBackoff, func(ctx context.Context) (*record, error) {
		return openHistory(ctx, cfg, log, 24*time.Hour)
	})
}

// Close writes what the recorder still holds, then closes the database.
// Call it after the last deployment has ended.
func (r *record) Close(log *slog.Logger) {
	r.rec.Close()
	if err := r.store.Close(); err != nil {
		log.Error("history: close", "error", err)
	}
}

// recordCLI opens the history for a deploy or rollback run from the
// command line and makes d record its deployments; the returned func
// flushes and closes it (call it before the command returns). When the
// history cannot be opened, the deploy goes on with a warning: the
// history is a record of deploys, and a full disk or a read-only data
// folder must not keep anyone from shipping or rolling back a fix (each
// host's revisions.log still records the switch). A
// DEPLOY_DATABASE_URL the driver cannot read is a configuration error
// (exit 2), as a malformed one is.
func recordCLI(ctx context.Context, cfg *config.Config, d *deploy.Deployer, log *slog.Logger) (hostsDeployed, func(), error) {
	r, err := openHistory(ctx, cfg, log, 0)
	var ce *config.Error
	if errors.As(err, &ce) {
		return nil, nil, err
	}
	if err != nil {
		log.Warn("this deployment is not recorded in the history", "error", err)
		return nil, func() {}, nil
	}
	addObserver(d, r.rec)
	unshare := shareEvents(ctx, cfg, d, log, r.store)
	return r.store, func() { unshare(); r.Close(log) }, nil
}

// osUser names who ran a CLI deployment, for the record.
func osUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if name := os.Getenv("USER"); name != "" {
		return name
	}
	return fmt.Sprintf("uid %d", os.Getuid())
}

// newNotifier returns the notifier DEPLOY_NOTIFY_URL and
// DEPLOY_BITBUCKET_TOKEN ask for, or nil when neither is set. The caller
// owns it: closeNotifier delivers what is queued.
func newNotifier(cfg *config.Config, log *slog.Logger) (*notify.Notifier, error) {
	if cfg.NotifyURL == "" && cfg.BitbucketToken == "" {
		return nil, nil
	}
	nc := notify.Config{URL: cfg.NotifyURL, PublicURL: cfg.PublicURL, Logger: log}
	if cfg.BitbucketToken != "" {
		// Validate made sure the repository is known.
		workspace, slug, _ := cfg.BitbucketRepo()
		nc.Bitbucket = &notify.Bitbucket{APIURL: cfg.BitbucketAPIURL, Token: cfg.BitbucketToken, Workspace: workspace, RepoSlug: slug}
	}
	return notify.New(nc)
}

// closeNotifier waits up to limit for the queued notifications to be
// delivered; what is left is logged, and never changes the exit status
// (a notification never fails a deployment).
func closeNotifier(n *notify.Notifier, log *slog.Logger, limit time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		log.Warn("notifications not sent", "error", err)
	}
}

// addObserver makes o hear d's deployments besides any observer d has.
func addObserver(d *deploy.Deployer, o deploy.Observer) {
	if d.Observer == nil {
		d.Observer = o
		return
	}
	d.Observer = deploy.Observers{d.Observer, o}
}

// notifyCLI makes d's deployments notified, for the deploy and rollback
// commands. The returned func waits (30 s at most) for the notifications
// to be delivered before the command exits.
func notifyCLI(cfg *config.Config, log *slog.Logger, d *deploy.Deployer) (wait func(), err error) {
	n, err := newNotifier(cfg, log)
	if err != nil || n == nil {
		return func() {}, err
	}
	addObserver(d, n)
	return func() { closeNotifier(n, log, 30*time.Second) }, nil
}

// seedHostMetrics reads every host's current release once, in the
// background, so that pushdeploy_host_commit_info (and the hosts-disagree gauge)
// exist before the first deployment. A host that cannot be read gets its
// series from its next deployment. The returned func waits for the read,
// which ends with ctx.
func seedHostMetrics(ctx context.Context, m *metrics.Collector, w *deploy.Worker, log *slog.Logger) (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		asOf := time.Now()
		hosts, err := w.Releases(ctx)
		if err != nil {
			log.Warn("metrics: the hosts' current commits are unknown until the next deployment", "error", err)
			return
		}
		for _, h := range hosts {
			if h.Err != nil {
				log.Warn("metrics: a host's current commit is unknown until its next deployment", "host", h.Host.String(), "error", h.Err)
			}
		}
		m.SeedHosts(w.App, hosts, asOf)
	}()
	return func() { <-done }
}

// checkDataDir warns when DEPLOY_DATA_DIR exists and others may enter it.
// It does not change the folder's mode: it may be shared on purpose (a
// backup group), and the warning names the command that tightens it.
// serve creates a missing folder with mode 0700, and the mirror (gitsrc)
// and the history database create what they write inside private (folders
// 0700, files 0600) by themselves, without a process-wide umask, which the
// commands run for `local` hosts would inherit.
func checkDataDir(dir string, log *slog.Logger) {
	fi, err := os.Stat(dir)
	if err != nil {
		return // missing: created private when needed
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		log.Warn(fmt.Sprintf("DEPLOY_DATA_DIR: other users can enter %s (mode %04o), which holds the repository's mirror and the deployment history; run chmod -R go= %s", dir, perm, dir))
	}
}

// serveGuard turns the validated network lists and rate limits of the
// configuration into the web server's guard.
func serveGuard(cfg *config.Config) webhook.Guard {
	return webhook.Guard{
		WebhookAllow:   mustPrefixes(cfg.WebhookAllowCIDRs),
		TrustedProxies: mustPrefixes(cfg.TrustedProxies),
		RateLimit:      float64(cfg.RateLimit),
		RateBurst:      cfg.RateBurst,
	}
}

// mustPrefixes parses CIDR prefixes that config.Validate has checked.
func mustPrefixes(list []string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range list {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

// hostDialer sends the hosts-file line "local" to localrun and every
// other host to SSH.
type hostDialer struct {
	ssh   deploy.Dialer
	local deploy.Dialer
}

var _ deploy.Dialer = hostDialer{}

// newHostDialer dials hosts with runner, and the local host with a
// localrun.Runner that runs its commands as localUser (empty: the
// deployer's own user) and lends runner's deploy key to the clone through a
// temporary local agent socket.
func newHostDialer(runner *sshrun.Runner, localUser string) hostDialer {
	local := localrun.New(runner.ServeGitAgent)
	local.User = localUser
	return hostDialer{ssh: runner, local: local}
}

func (d hostDialer) Dial(ctx context.Context, h deploy.Host) (deploy.Conn, error) {
	if h.Local {
		return d.local.Dial(ctx, h)
	}
	return d.ssh.Dial(ctx, h)
}

// queueLease is how long serve's (and the command line's) claim on a
// deployment lasts without a renewal: the bound within which another
// deployer takes over the app's queue from one that died
// (docs/high-availability.md). It is renewed every third of that. The
// binary the end-to-end tests build may have another (queueLeaseFor,
// lease_e2e.go).
const queueLease = 30 * time.Second

// queueFile is the SQLite database of the queue in DEPLOY_DATA_DIR, for
// serve without DEPLOY_DATABASE_URL.
const queueFile = "queue.db"

// openQueue opens the deployment queue: in PostgreSQL with
// DEPLOY_DATABASE_URL (shared by every deployer of that database), else
// in SQLite in DEPLOY_DATA_DIR (one deployer; what it answered survives
// its restart). Claims are made as owner.
func openQueue(ctx context.Context, cfg *config.Config, owner string) (*queue.Backlog, error) {
	opts := queue.Options{Owner: owner, Lease: queueLeaseFor()}
	if cfg.DatabaseURL != "" {
		q, err := queue.OpenPostgres(ctx, cfg.DatabaseURL, opts)
		if err != nil {
			return nil, fmt.Errorf("DEPLOY_DATABASE_URL: %w", err)
		}
		return &queue.Backlog{Q: q, Database: history.RedactURL(cfg.DatabaseURL)}, nil
	}
	path := filepath.Join(cfg.DataDir, queueFile)
	q, err := queue.OpenSQLite(ctx, path, opts)
	if err != nil {
		return nil, fmt.Errorf("DEPLOY_DATA_DIR: %w", err)
	}
	return &queue.Backlog{Q: q, Database: path}, nil
}

// recoverQueue ends, at serve's start, the claims its SQLite queue still
// has: only this serve uses it, so they are a dead serve's (killed,
// crashed), and the app's queue goes on at once instead of after a lease.
// Their deployments are recorded interrupted (the history's start has
// done so already when they ran on this machine). With a database shared
// by several deployers, claims end only with their leases.
func recoverQueue(ctx context.Context, cfg *config.Config, b *queue.Backlog, rec deploy.Interrupter, log *slog.Logger) error {
	if cfg.DatabaseURL != "" {
		return nil
	}
	jobs, err := b.Q.ExpireAll(ctx)
	if err != nil {
		return fmt.Errorf("DEPLOY_DATA_DIR: deployment queue: %w", err)
	}
	for _, j := range jobs {
		reason := fmt.Sprintf("interrupted: the deployer (%s) stopped before the deployment finished", j.Owner)
		if _, err := rec.Interrupt(ctx, j.ID, reason); err != nil {
			return fmt.Errorf("DEPLOY_DATA_DIR: %w", err)
		}
		log.Warn("deployment interrupted: its deployer stopped before it finished", "deployment", j.ID, "app", j.App, "deployer", j.Owner)
	}
	return nil
}

// pruneQueue removes, every hour until ctx ends, the queue's finished jobs
// and the delivery ids older than a day: the history keeps the
// deployments, and a forge redelivers within hours.
func pruneQueue(ctx context.Context, q *queue.Queue, log *slog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := q.Prune(ctx, 24*time.Hour); err != nil && ctx.Err() == nil {
			log.Warn("deployment queue: prune failed (tried again in an hour)", "error", err)
		}
	}
}
