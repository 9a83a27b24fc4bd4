package webhook

import (
	"net/http"
	"testing"
)

func TestGitea(t *testing.T) {
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
	tag := &Event{
		Repo:    "team/app",
		Actor:   "Ada Lovelace",
		Changes: []Change{{Ref: "refs/tags/v2.4.0", Tag: true, Commit: tagCommit}},
	}
	runFixtures(t, Gitea, []fixtureCase{
		{name: "push", file: "gitea-push.json", kind: "push", want: push,
			wantChange: push.Changes[0]},
		{name: "repository matches", file: "gitea-push.json", kind: "push", repo: "team/APP", want: push,
			wantChange: push.Changes[0]},
		{name: "other repository", file: "gitea-push.json", kind: "push", repo: "team/website", want: push,
			wantReason: ReasonOtherRepo},
		{name: "other branch", file: "gitea-push.json", kind: "push", branch: "main", want: push,
			wantReason: ReasonOtherBranch},
		{name: "branch deleted", file: "gitea-delete.json", kind: "push", want: deleted,
			wantReason: ReasonBranchDelete},
		{name: "tag", file: "gitea-tag.json", kind: "push", want: tag,
			wantReason: ReasonTag},
	})
}

// Forgejo sends X-Forgejo-* headers besides (or, in later versions,
// instead of) Gitea's.
func TestForgejo(t *testing.T) {
	body := readFixture(t, "gitea-push.json")
	h := http.Header{}
	h.Set("X-Forgejo-Event", "push")
	h.Set("X-Forgejo-Delivery", "0b1c2d3e-4f5a-6b7c-8d9e-0f1a2b3c4d5e")
	h.Set("X-Forgejo-Signature", hmacHex(testSecret, body))
	h.Set("X-GitHub-Event", "push")
	ev, err := Parse(h, body, testSecret, false)
	if err != nil {
		t.Fatalf("Parse: got error %v, want none", err)
	}
	if ev.Provider != Gitea || ev.DeliveryID != "0b1c2d3e-4f5a-6b7c-8d9e-0f1a2b3c4d5e" || len(ev.Changes) != 1 {
		t.Errorf("Parse: got %+v, want a Gitea push with the Forgejo delivery id", ev)
	}
}
