package webhook

import "testing"

func TestGitHub(t *testing.T) {
	push := &Event{
		Repo:    "team/app",
		Actor:   "ada",
		Changes: []Change{{Ref: "refs/heads/release", Branch: "release", Commit: releaseTip}},
	}
	deleted := &Event{
		Repo:    "team/app",
		Actor:   "ada",
		Changes: []Change{{Ref: "refs/heads/release", Branch: "release", Deleted: true}},
	}
	tag := &Event{
		Repo:    "team/app",
		Actor:   "ada",
		Changes: []Change{{Ref: "refs/tags/v2.4.0", Tag: true, Commit: tagCommit}},
	}
	runFixtures(t, GitHub, []fixtureCase{
		{name: "push", file: "github-push.json", kind: "push", want: push,
			wantChange: push.Changes[0]},
		{name: "repository matches", file: "github-push.json", kind: "push", repo: "Team/App", want: push,
			wantChange: push.Changes[0]},
		{name: "other repository", file: "github-push.json", kind: "push", repo: "team/website", want: push,
			wantReason: ReasonOtherRepo},
		{name: "other branch", file: "github-push.json", kind: "push", branch: "main", want: push,
			wantReason: ReasonOtherBranch},
		{name: "branch deleted", file: "github-delete.json", kind: "push", want: deleted,
			wantReason: ReasonBranchDelete},
		{name: "tag", file: "github-tag.json", kind: "push", want: tag,
			wantReason: ReasonTag},
		{name: "ping", file: "github-ping.json", kind: "ping", want: &Event{Repo: "team/app", Actor: "ada"},
			wantReason: ReasonPing},
	})
}
