package webhook

import "testing"

func TestGitLab(t *testing.T) {
	push := &Event{
		Repo:    "team/app",
		Actor:   "Ada Lovelace",
		Changes: []Change{{Ref: "refs/heads/release", Branch: "release", Commit: releaseTip}},
	}
	deleted := &Event{
		Repo:    "team/app",
		Actor:   "Ada Lovelace",
		Changes: []Change{{Ref: "refs/heads/release", Branch: "release", Deleted: true}},
	}
	// checkout_sha (the commit), not after (the annotated tag object).
	tag := &Event{
		Repo:    "team/app",
		Actor:   "Ada Lovelace",
		Changes: []Change{{Ref: "refs/tags/v2.4.0", Tag: true, Commit: tagCommit}},
	}
	// A Tag Push Hook never counts as a branch, whatever its ref says.
	tagHookOnBranch := &Event{
		Repo:    "team/app",
		Actor:   "Ada Lovelace",
		Changes: []Change{{Ref: "refs/heads/release", Tag: true, Commit: releaseTip}},
	}
	runFixtures(t, GitLab, []fixtureCase{
		{name: "push", file: "gitlab-push.json", kind: "Push Hook", want: push,
			wantChange: push.Changes[0]},
		{name: "repository matches", file: "gitlab-push.json", kind: "Push Hook", repo: "TEAM/APP", want: push,
			wantChange: push.Changes[0]},
		{name: "other repository", file: "gitlab-push.json", kind: "Push Hook", repo: "team/website", want: push,
			wantReason: ReasonOtherRepo},
		{name: "other branch", file: "gitlab-push.json", kind: "Push Hook", branch: "main", want: push,
			wantReason: ReasonOtherBranch},
		{name: "branch deleted", file: "gitlab-delete.json", kind: "Push Hook", want: deleted,
			wantReason: ReasonBranchDelete},
		{name: "tag", file: "gitlab-tag.json", kind: "Tag Push Hook", want: tag,
			wantReason: ReasonTag},
		{name: "tag hook with a branch ref", file: "gitlab-push.json", kind: "Tag Push Hook", want: tagHookOnBranch,
			wantReason: ReasonTag},
	})
}
