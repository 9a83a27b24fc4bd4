package webhook

import (
	"fmt"
	"strings"
	"testing"
)

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
		// A change whose new value is all zeros deletes the ref, whatever
		// its type says: never a deploy of commit 000….
		{name: "UPDATE to all zeros", kind: "repo:refs_changed", body: bbServerBody(`[` + bbServerRefChange("UPDATE", releaseTip, zero40) + `]`),
			want: deleted, wantReason: ReasonBranchDelete},
		{name: "ADD of all zeros", kind: "repo:refs_changed", body: bbServerBody(`[` + bbServerRefChange("ADD", zero40, zero40) + `]`),
			want: deleted, wantReason: ReasonBranchDelete},
		{name: "update (SHA-256) to all zeros", kind: "repo:refs_changed", body: bbServerBody(`[` + bbServerRefChange("update", releaseTip, strings.Repeat("0", 64)) + `]`),
			want: deleted, wantReason: ReasonBranchDelete},
		{name: "UPDATE", kind: "repo:refs_changed", body: bbServerBody(`[` + bbServerRefChange("UPDATE", mainTip, releaseTip) + `]`),
			want: push, wantChange: push.Changes[0]},
		{name: "no changes", kind: "repo:refs_changed", body: bbServerBody(`[]`),
			want: &Event{Repo: "OPS/app", Actor: "Ada Lovelace"}, wantReason: ReasonEmptyPush},
	})
}

var zero40 = strings.Repeat("0", 40)

// bbServerBody is a Bitbucket Server repo:refs_changed payload of OPS/app
// with changes (a JSON array).
func bbServerBody(changes string) string {
	return `{"eventKey": "repo:refs_changed", "date": "2026-11-25T18:34:00+0000",
		"actor": {"name": "alovelace", "displayName": "Ada Lovelace"},
		"repository": {"slug": "app", "project": {"key": "OPS"}}, "changes": ` + changes + `}`
}

// bbServerRefChange is one change of the release branch from one hash to
// another.
func bbServerRefChange(typ, from, to string) string {
	return fmt.Sprintf(`{"ref": {"id": "refs/heads/release", "displayId": "release", "type": "BRANCH"},
		"refId": "refs/heads/release", "fromHash": %q, "toHash": %q, "type": %q}`, from, to, typ)
}
