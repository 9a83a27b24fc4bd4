package deploy

import (
	"strings"
	"time"
)

// Filter selects deployments from a history, newest first (by queued time,
// then id). The zero Filter selects everything.
type Filter struct {
	// Limit is the most deployments returned; 0 means no limit.
	Limit int
	// BeforeQueued and BeforeID, when BeforeID is set, select only the
	// deployments that come after that one in newest-first order: the
	// next page.
	BeforeQueued time.Time
	BeforeID     string
	// Status, when set, is the deployment's status.
	Status Status
	// Commit, when set, is a prefix (lower-case hex) of the deployed
	// commit or, before it is resolved, of the requested one.
	Commit string
	// Since, when set, keeps deployments queued at or after it.
	Since time.Time
	// App, when set, keeps only that app's deployments.
	App string
}

// Match reports whether d passes f's conditions (all but Limit).
func (f Filter) Match(d *Deployment) bool {
	if f.App != "" && d.App != f.App {
		return false
	}
	if f.Status != "" && d.Status != f.Status {
		return false
	}
	if f.Commit != "" && !strings.HasPrefix(d.Release.Commit, f.Commit) &&
		!(d.Release.Commit == "" && strings.HasPrefix(d.Request.Push.Commit, f.Commit)) {
		return false
	}
	if !f.Since.IsZero() && d.Queued.Before(f.Since) {
		return false
	}
	if f.BeforeID != "" && !NewerFirst(Key(f.BeforeQueued, f.BeforeID), Key(d.Queued, d.ID)) {
		return false
	}
	return true
}

// OrderKey places a deployment in a newest-first list.
type OrderKey struct {
	Queued time.Time
	ID     string
}

// Key returns the order key of a deployment queued at q with id.
func Key(q time.Time, id string) OrderKey { return OrderKey{Queued: q, ID: id} }

// NewerFirst reports whether a comes before b in a newest-first list.
func NewerFirst(a, b OrderKey) bool {
	if !a.Queued.Equal(b.Queued) {
		return a.Queued.After(b.Queued)
	}
	return a.ID > b.ID
}
