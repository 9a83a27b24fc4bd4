package webhook

import "testing"

func TestBitbucketCloud(t *testing.T) {
	push := &Event{
		Repo:    "team/app",
		Actor:   "Ada Lovelace",
		Changes: []Change{{Ref: "refs/heads/release", Branch: "release", Commit: releaseTip}},
	}
	multi := &Event{
		Repo:  "team/app",
		Actor: "Grace Hopper",
		Changes: []Change{
			{Ref: "refs/heads/main", Branch: "main", Commit: mainTip},
			{Ref: "refs/heads/release", Branch: "release", Commit: releaseTip},
			{Ref: "refs/tags/v2.3.1", Tag: true, Commit: releaseTip},
		},
	}
	tag := &Event{
		Repo:    "team/app",
		Actor:   "Ada Lovelace",
		Changes: []Change{{Ref: "refs/tags/release", Tag: true, Commit: tagCommit}},
	}
	deleted := &Event{
		Repo:    "team/app",
		Actor:   "Ada Lovelace",
		Changes: []Change{{Ref: "refs/heads/release", Branch: "release", Deleted: true}},
	}
	empty := &Event{Repo: "team/app", Actor: "Ada Lovelace"}
	runFixtures(t, BitbucketCloud, []fixtureCase{
		{name: "push", file: "bitbucket-cloud-push.json", kind: "repo:push", want: push,
			wantChange: push.Changes[0]},
		{name: "push, repository matches", file: "bitbucket-cloud-push.json", kind: "repo:push", repo: "TEAM/app", want: push,
			wantChange: push.Changes[0]},
		{name: "other repository", file: "bitbucket-cloud-push.json", kind: "repo:push", repo: "team/website", want: push,
			wantReason: ReasonOtherRepo},
		{name: "other branch", file: "bitbucket-cloud-push.json", kind: "repo:push", branch: "main", want: push,
			wantReason: ReasonOtherBranch},
		{name: "several changes", file: "bitbucket-cloud-push-multi.json", kind: "repo:push", want: multi,
			wantChange: multi.Changes[1]},
		{name: "several changes, main", file: "bitbucket-cloud-push-multi.json", kind: "repo:push", branch: "main", want: multi,
			wantChange: multi.Changes[0]},
		{name: "tag named release", file: "bitbucket-cloud-push-tag.json", kind: "repo:push", want: tag,
			wantReason: ReasonTag},
		{name: "branch deleted", file: "bitbucket-cloud-delete.json", kind: "repo:push", want: deleted,
			wantReason: ReasonBranchDelete},
		{name: "no changes", file: "bitbucket-cloud-empty.json", kind: "repo:push", want: empty,
			wantReason: ReasonEmptyPush},
	})
}

func TestBitbucketServer(t *testing.T) {
	push := &Event{
		Repo:    "OPS/app",
		Actor:   "Ada Lovelace",
		Changes: []Change{{Ref: "refs/heads/release", Branch: "release", Commit: releaseTip}},
	}
	multi := &Event{
		Repo:  "OPS/app",
		Actor: "Grace Hopper",
		Changes: []Change{
			{Ref: "refs/heads/feature/login", Branch: "feature/login", Commit: mainTip},
			{Ref: "refs/heads/release", Branch: "release", Commit: releaseTip},
			{Ref: "refs/tags/v2.3.1", Tag: true, Commit: "5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f80"},
		},
	}
	tag := &Event{
		Repo:    "OPS/app",
		Actor:   "Ada Lovelace",
		Changes: []Change{{Ref: "refs/tags/v2.4.0", Tag: true, Commit: tagCommit}},
	}
	deleted := &Event{
		Repo:    "OPS/app",
		Actor:   "Ada Lovelace",
		Changes: []Change{{Ref: "refs/heads/release", Branch: "release", Deleted: true}},
	}
	runFixtures(t, BitbucketServer, []fixtureCase{
		{name: "refs changed", file: "bitbucket-server-refs-changed.json", kind: "repo:refs_changed", want: push,
			wantChange: push.Changes[0]},
		{name: "repository matches", file: "bitbucket-server-refs-changed.json", kind: "repo:refs_changed", repo: "ops/app", want: push,
			wantChange: push.Changes[0]},
		{name: "other repository", file: "bitbucket-server-refs-changed.json", kind: "repo:refs_changed", repo: "OPS/website", want: push,
			wantReason: ReasonOtherRepo},
		{name: "other branch", file: "bitbucket-server-refs-changed.json", kind: "repo:refs_changed", branch: "main", want: push,
			wantReason: ReasonOtherBranch},
		{name: "several changes", file: "bitbucket-server-refs-changed-multi.json", kind: "repo:refs_changed", want: multi,
			wantChange: multi.Changes[1]},
		{name: "several changes, feature", file: "bitbucket-server-refs-changed-multi.json", kind: "repo:refs_changed", branch: "feature/login", want: multi,
			wantChange: multi.Changes[0]},
		{name: "tag", file: "bitbucket-server-tag.json", kind: "repo:refs_changed", want: tag,
			wantReason: ReasonTag},
		{name: "branch deleted", file: "bitbucket-server-delete.json", kind: "repo:refs_changed", want: deleted,
			wantReason: ReasonBranchDelete},
		{name: "ping", file: "bitbucket-server-ping.json", kind: "diagnostics:ping", want: &Event{},
			wantReason: ReasonPing},
	})
}
