package deploy

import (
	"context"
	"errors"
	"testing"
)

// branchResolver answers a pinned push with its commit (it is on the
// branch in these tests) and the branch with tip, or fails that look-up.
type branchResolver struct {
	repo, tip string
	tipErr    error
}

func (r branchResolver) Resolve(_ context.Context, p Push) (Release, error) {
	if p.Commit != "" {
		return Release{RepoURL: r.repo, Branch: "release", Commit: p.Commit}, nil
	}
	if r.tipErr != nil {
		return Release{}, r.tipErr
	}
	return Release{RepoURL: r.repo, Branch: "release", Commit: r.tip}, nil
}

// TestBranchTipRecorded: every deployment and rollback records the tip
// the branch had when it started, in the snapshot the observers (the
// history) hear last; a rollback whose look-up fails runs all the same,
// with the tip unknown.
func TestBranchTipRecorded(t *testing.T) {
	r := newRig(t, 2)
	var last *Deployment
	r.d.Observer = ObserverFunc(func(ev Event) {
		if ev.Kind == EventDeployment {
			last = ev.Deployment
		}
	})
	deps := r.deployN(2)
	if got := deps[1].Snapshot().BranchTip; got != r.commits[1] {
		t.Errorf("deploy of the tip recorded tip %q, want the commit it shipped %s", got, r.commits[1])
	}

	// A deploy pinned to the older commit records the tip beside it.
	r.d.Resolver = branchResolver{repo: r.repo, tip: r.commits[1]}
	r.clock.Tick()
	dep, err := deployNow(r.d, r.hosts, Push{Branch: "release", Commit: r.commits[0]})
	if err != nil {
		t.Fatal(err)
	}
	if got := dep.Snapshot(); got.Release.Commit != r.commits[0] || got.BranchTip != r.commits[1] {
		t.Errorf("pinned deploy: shipped %s with tip %q, want %s with tip %s", got.Release.Commit, got.BranchTip, r.commits[0], r.commits[1])
	}
	if last == nil || last.ID != dep.ID || last.BranchTip != r.commits[1] {
		t.Errorf("the observers' last snapshot of the pinned deploy lacks its tip: %+v", last)
	}

	r.clock.Tick()
	rb, err := r.rollback("")
	if err != nil {
		t.Fatal(err)
	}
	if got := rb.Snapshot().BranchTip; got != r.commits[1] || last.ID != rb.ID || last.BranchTip != got {
		t.Errorf("rollback recorded tip %q (observers: %q), want %s", got, last.BranchTip, r.commits[1])
	}

	// The branch cannot be read: the rollback goes on, the tip unknown.
	r.d.Resolver = branchResolver{repo: r.repo, tipErr: errors.New("git server down")}
	r.clock.Tick()
	rb, err = r.rollback("")
	if err != nil {
		t.Fatalf("rollback with the branch unreadable: %v", err)
	}
	if s := rb.Snapshot(); s.Status != StatusSucceeded || s.BranchTip != "" {
		t.Errorf("rollback with the branch unreadable: %s, tip %q; want succeeded, tip unknown", s.Status, s.BranchTip)
	}
}
