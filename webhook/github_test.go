package webhook

import (
	"fmt"
	"strings"
	"testing"
)

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
		// GitHub sends both deleted: true and an all-zero after; either
		// one alone is a deletion too, never a deploy.
		{name: "deleted alone, after not zero", kind: "push", body: ghPushBody(releaseTip, true), want: deleted,
			wantReason: ReasonBranchDelete},
		{name: "after all zeros alone, deleted false", kind: "push", body: ghPushBody(strings.Repeat("0", 40), false), want: deleted,
			wantReason: ReasonBranchDelete},
		{name: "after all zeros (SHA-256) alone", kind: "push", body: ghPushBody(strings.Repeat("0", 64), false), want: deleted,
			wantReason: ReasonBranchDelete},
		{name: "neither", kind: "push", body: ghPushBody(releaseTip, false), want: push,
			wantChange: push.Changes[0]},
	})
}

// ghPushBody is a GitHub push to the release branch with after and deleted
// as given.
func ghPushBody(after string, deleted bool) string {
	return fmt.Sprintf(`{"ref": "refs/heads/release", "before": %q, "after": %q, "created": false, "deleted": %t, "forced": false,
		"repository": {"full_name": "team/app"}, "pusher": {"name": "ada"}, "sender": {"login": "ada"}}`, mainTip, after, deleted)
}
