// Package notify tells the outside world about deployments: a JSON POST
// with a Slack-compatible "text" to a chat webhook (DEPLOY_NOTIFY_URL) when
// a deployment starts, succeeds or fails (or is refused: promotion), and a
// Bitbucket Cloud build status on the deployed commit
// (DEPLOY_BITBUCKET_TOKEN). A deployer with several apps makes one
// Notifier per app, each with its own Config: nothing is shared between
// them.
//
// A Notifier is a deploy.Observer. It never blocks a deployment and never
// fails one: Observe only queues, and each destination has one goroutine
// of its own that delivers its queue in order (so a deployment's start
// always goes before its end), retrying network errors, 5xx and 429 a few
// times. What could not be delivered is logged, without the token and
// without the secret parts of the notify URL.
package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// Config is what a Notifier sends where. The zero value of the tuning
// fields means their default.
type Config struct {
	// URL receives the JSON notifications; "" sends none. It may hold a
	// secret (a Slack webhook URL does): only its scheme and host are
	// ever logged.
	URL string
	// PublicURL is where users reach serve: notifications and build
	// statuses link to PublicURL/deployments/ID. "" links nowhere (and
	// build statuses link to the commit on bitbucket.org instead).
	PublicURL string
	// Bitbucket, when set, gets build statuses.
	Bitbucket *Bitbucket

	Logger *slog.Logger
	// Client sends the requests (default: NewClient()).
	Client *http.Client
	// Timeout bounds one attempt (default 10s).
	Timeout time.Duration
	// Attempts is how many times one notification is tried (default 4).
	Attempts int
	// Backoff is the wait before the first retry; it doubles after each
	// (default 1s).
	Backoff time.Duration
	// QueueSize bounds the notifications waiting per destination (default
	// 100); beyond it new ones are dropped and logged.
	QueueSize int
}

// Bitbucket is a Bitbucket Cloud repository whose commits get build
// statuses.
type Bitbucket struct {
	// APIURL is the API base, e.g. https://api.bitbucket.org/2.0.
	APIURL string
	// Token is a repository, project or workspace access token (or an
	// OAuth access token) allowed to write the repository. A secret.
	Token string
	// Workspace and RepoSlug name the repository.
	Workspace, RepoSlug string
}

// Notifier turns deployment events into notifications. Create it with New
// and end it with Close; Observe is safe for concurrent use.
type Notifier struct {
	cfg   Config
	log   *slog.Logger
	chat  *sink
	build *sink

	mu     sync.Mutex
	closed bool
	// started holds the deployments whose start was told, so that their
	// end is told too (and their start only once).
	started map[string]bool
}

var _ deploy.Observer = (*Notifier)(nil)

// New starts a Notifier with a delivery goroutine per destination. The
// caller owns them: call Close to deliver what is queued and stop them.
func New(cfg Config) (*Notifier, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 4
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = time.Second
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 100
	}
	if cfg.Client == nil {
		cfg.Client = NewClient()
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Notifier{cfg: cfg, log: log, started: map[string]bool{}}
	if cfg.URL != "" {
		s, err := newSink(cfg, log, "notify", cfg.URL, "")
		if err != nil {
			return nil, fmt.Errorf("notify URL: %w", err)
		}
		n.chat = s
	}
	if b := cfg.Bitbucket; b != nil {
		if b.Workspace == "" || b.RepoSlug == "" {
			return nil, errors.New("bitbucket: workspace and repository slug are required")
		}
		s, err := newSink(cfg, log, "bitbucket", b.APIURL, b.Token)
		if err != nil {
			if n.chat != nil {
				n.chat.stop()
			}
			return nil, fmt.Errorf("bitbucket API URL: %w", err)
		}
		n.build = s
	}
	return n, nil
}

// Observe queues the notifications a deployment event calls for, and
// returns at once. The start is told once the deployment knows its commit
// (a deploy resolves it first thing; a rollback once it has checked every
// host's target); a deployment that ends before that is told only at its
// end. A refused deployment (promotion) is told once, as refused.
// Deployments cancelled before they started are not told.
func (n *Notifier) Observe(ev deploy.Event) {
	d := ev.Deployment
	if ev.Kind != deploy.EventDeployment || d == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	switch d.Status {
	case deploy.StatusRunning:
		if n.started[d.ID] || d.Release.Commit == "" {
			return
		}
		n.started[d.ID] = true
		n.send(d, eventStarted)
	case deploy.StatusSucceeded, deploy.StatusFailed:
		delete(n.started, d.ID)
		event := eventSucceeded
		if d.Status == deploy.StatusFailed {
			event = eventFailed
		}
		n.send(d, event)
	case deploy.StatusRefused:
		delete(n.started, d.ID)
		n.send(d, eventRefused)
	case deploy.StatusCancelled, deploy.StatusInterrupted:
		delete(n.started, d.ID)
	}
}

// send queues d's notifications for event; n.mu is held.
func (n *Notifier) send(d *deploy.Deployment, event string) {
	link := n.link(d.ID)
	if n.chat != nil {
		body, err := chatBody(d, event, link)
		if err == nil {
			n.chat.enqueue(message{url: n.cfg.URL, body: body, what: event + " " + d.ID})
		} else {
			n.log.Error("notification not built", "deployment", d.ID, "event", event, "error", err)
		}
	}
	if n.build != nil && d.Action != deploy.ActionRollback && d.Release.Commit != "" {
		m, err := n.statusMessage(d, event, link)
		if err == nil {
			n.build.enqueue(m)
		} else {
			n.log.Error("build status not built", "deployment", d.ID, "event", event, "error", err)
		}
	}
}

// link is the status page of deployment id, or "" without a PublicURL.
func (n *Notifier) link(id string) string {
	if n.cfg.PublicURL == "" {
		return ""
	}
	return trimSlash(n.cfg.PublicURL) + "/deployments/" + id
}

func trimSlash(s string) string {
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}

// Close stops taking notifications and waits until what is queued has been
// delivered (or given up) or ctx ends: then deliveries under way are
// stopped, and the error says how many notifications were not sent.
func (n *Notifier) Close(ctx context.Context) error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	n.mu.Unlock()
	var errs []error
	for _, s := range []*sink{n.chat, n.build} {
		if s == nil {
			continue
		}
		if err := s.drain(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
