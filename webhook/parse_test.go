package webhook

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// testSecret signs every test delivery.
const testSecret = "It's a Secret to Everybody"

// Delivery ids the test headers carry, per provider.
var testDeliveryID = map[string]string{
	BitbucketCloud:  "8d0a5f1e-3c2b-4a9d-b7e6-5f4c3b2a1d0e",
	BitbucketServer: "1f2e3d4c-5b6a-4798-8a7b-6c5d4e3f2a1b",
	GitHub:          "72d3162e-cc78-11e3-81ab-4c9367dc0958",
	GitLab:          "b3c1e2d4-0f5a-4e6b-9c7d-8a1b2c3d4e5f",
	Gitea:           "f6266f16-1bf3-46a5-9ea4-602e06ead473",
}

// hmacHex is the hex HMAC of body under secret.
func hmacHex(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

func hmacSHA1Hex(secret string, body []byte) string {
	m := hmac.New(sha1.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// signedHeaders returns the headers provider sends with a delivery of kind,
// signed with secret the way the provider signs (secret "" sends none).
func signedHeaders(provider, kind string, body []byte, secret string) http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	id := testDeliveryID[provider]
	mac, mac1 := hmacHex(secret, body), hmacSHA1Hex(secret, body)
	switch provider {
	case BitbucketCloud:
		h.Set("User-Agent", "Bitbucket-Webhooks/2.0")
		h.Set("X-Event-Key", kind)
		h.Set("X-Request-UUID", id)
		h.Set("X-Hook-UUID", "{2b8f6d1c-9e3a-4c5b-8d7e-6f5a4b3c2d1e}")
		h.Set("X-Attempt-Number", "1")
		if secret != "" {
			h.Set("X-Hub-Signature", "sha256="+mac)
		}
	case BitbucketServer:
		h.Set("User-Agent", "Atlassian HttpClient 4.2.1 / Bitbucket-9.4.2 (9004002) / Default")
		h.Set("X-Event-Key", kind)
		h.Set("X-Request-Id", id)
		if secret != "" {
			h.Set("X-Hub-Signature", "sha256="+mac)
		}
	case GitHub:
		h.Set("User-Agent", "GitHub-Hookshot/9b1c2d3")
		h.Set("X-GitHub-Event", kind)
		h.Set("X-GitHub-Delivery", id)
		h.Set("X-GitHub-Hook-ID", "512345678")
		if secret != "" {
			h.Set("X-Hub-Signature", "sha1="+mac1)
			h.Set("X-Hub-Signature-256", "sha256="+mac)
		}
	case GitLab:
		h.Set("User-Agent", "GitLab/18.6.0")
		h.Set("X-Gitlab-Event", kind)
		h.Set("X-Gitlab-Event-UUID", "13792a34-cac6-4fda-95a8-c58e00a3954e")
		h.Set("X-Gitlab-Webhook-UUID", "2c2b7c8e-1f3a-4d5e-9b6c-7a8d9e0f1a2b")
		h.Set("X-Gitlab-Instance", "https://gitlab.example.com")
		h.Set("Idempotency-Key", id)
		if secret != "" {
			h.Set("X-Gitlab-Token", secret)
		}
	case Gitea:
		for _, p := range []string{"X-Gitea-", "X-Gogs-", "X-GitHub-"} {
			h.Set(p+"Event", kind)
			h.Set(p+"Delivery", id)
		}
		h.Set("X-Gitea-Event-Type", kind)
		if secret != "" {
			h.Set("X-Gitea-Signature", mac)
			h.Set("X-Gogs-Signature", mac)
			h.Set("X-Hub-Signature", "sha1="+mac1)
			h.Set("X-Hub-Signature-256", "sha256="+mac)
		}
	}
	return h
}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fixtureCase replays one testdata payload (or an inline body) through
// Parse and Decide.
type fixtureCase struct {
	name   string
	file   string
	body   string // the payload when file is ""
	kind   string
	branch string // default "release"
	repo   string
	want   *Event // Provider, Kind and DeliveryID are filled in
	// Decide's answer: the change, or the reason it was ignored.
	wantChange Change
	wantReason string
}

func runFixtures(t *testing.T, provider string, cases []fixtureCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := []byte(tc.body)
			if tc.file != "" {
				body = readFixture(t, tc.file)
			}
			ev, err := Parse(signedHeaders(provider, tc.kind, body, testSecret), body, testSecret, false)
			if err != nil {
				t.Fatalf("Parse: got error %v, want none", err)
			}
			want := *tc.want
			want.Provider, want.Kind, want.DeliveryID = provider, tc.kind, testDeliveryID[provider]
			if diff := cmp.Diff(&want, ev); diff != "" {
				t.Errorf("Parse: event mismatch (-want +got):\n%s", diff)
			}
			branch := tc.branch
			if branch == "" {
				branch = "release"
			}
			got, err := Decide(ev, branch, tc.repo)
			checkDecision(t, got, err, tc.wantChange, tc.wantReason)
		})
	}
}

func checkDecision(t *testing.T, got Change, err error, want Change, wantReason string) {
	t.Helper()
	if wantReason == "" {
		if err != nil {
			t.Fatalf("Decide: got error %v, want change %+v", err, want)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Decide: change mismatch (-want +got):\n%s", diff)
		}
		return
	}
	var ig *IgnoredError
	if !errors.As(err, &ig) {
		t.Fatalf("Decide: got %v (change %+v), want *IgnoredError %q", err, got, wantReason)
	}
	if ig.Reason != wantReason {
		t.Errorf("Decide: got reason %q (%v), want %q", ig.Reason, err, wantReason)
	}
	if !errors.Is(err, ErrIgnored) {
		t.Errorf("Decide: errors.Is(%v, ErrIgnored) = false, want true", err)
	}
	if got != (Change{}) {
		t.Errorf("Decide: got change %+v with the error, want none", got)
	}
}

// Commits used across the fixtures.
const (
	releaseTip = "9f2c4e1b7d3a5c8e0f1a2b3c4d5e6f708192a3b4"
	mainTip    = "c0ffee1234567890abcdef1234567890abcdef12"
	tagCommit  = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"
)

func TestIdentify(t *testing.T) {
	tests := []struct {
		name string
		h    map[string]string
		want Delivery
	}{
		{"none", map[string]string{"User-Agent": "curl/8"}, Delivery{}},
		{"bitbucket cloud push", map[string]string{"X-Event-Key": "repo:push", "X-Request-UUID": "u1"}, Delivery{BitbucketCloud, "repo:push", "u1"}},
		{"bitbucket server push", map[string]string{"X-Event-Key": "repo:refs_changed", "X-Request-Id": "r1"}, Delivery{BitbucketServer, "repo:refs_changed", "r1"}},
		{"bitbucket server ping", map[string]string{"X-Event-Key": "diagnostics:ping", "X-Request-Id": "r2"}, Delivery{BitbucketServer, "diagnostics:ping", "r2"}},
		{"bitbucket cloud other event", map[string]string{"X-Event-Key": "pullrequest:created", "X-Request-UUID": "u2"}, Delivery{BitbucketCloud, "pullrequest:created", "u2"}},
		{"bitbucket server other event", map[string]string{"X-Event-Key": "pr:opened", "X-Request-Id": "r3"}, Delivery{BitbucketServer, "pr:opened", "r3"}},
		{"github", map[string]string{"X-GitHub-Event": "push", "X-GitHub-Delivery": "g1"}, Delivery{GitHub, "push", "g1"}},
		{"gitlab idempotency key", map[string]string{"X-Gitlab-Event": "Push Hook", "Idempotency-Key": "k1", "X-Gitlab-Event-UUID": "e1"}, Delivery{GitLab, "Push Hook", "k1"}},
		{"gitlab event uuid", map[string]string{"X-Gitlab-Event": "Tag Push Hook", "X-Gitlab-Event-UUID": "e1"}, Delivery{GitLab, "Tag Push Hook", "e1"}},
		{"gitea before github", map[string]string{"X-Gitea-Event": "push", "X-GitHub-Event": "push", "X-Gitea-Delivery": "t1", "X-GitHub-Delivery": "t1"}, Delivery{Gitea, "push", "t1"}},
		{"forgejo", map[string]string{"X-Forgejo-Event": "push", "X-Forgejo-Delivery": "f1", "X-GitHub-Event": "push"}, Delivery{Gitea, "push", "f1"}},
		{"gogs only", map[string]string{"X-Gogs-Event": "push"}, Delivery{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tc.h {
				h.Set(k, v)
			}
			if got := Identify(h); got != tc.want {
				t.Errorf("Identify: got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseNoProvider(t *testing.T) {
	body := readFixture(t, "github-push.json")
	h := http.Header{"X-Hub-Signature-256": {"sha256=" + hmacHex(testSecret, body)}}
	_, err := Parse(h, body, testSecret, false)
	var bad *BadRequestError
	if !errors.As(err, &bad) {
		t.Fatalf("Parse: got %v, want *BadRequestError", err)
	}
	if want := "no webhook provider headers (X-Event-Key, X-GitHub-Event, X-Gitlab-Event, X-Gitea-Event)"; bad.Msg != want {
		t.Errorf("Parse: got message %q, want %q", bad.Msg, want)
	}
}

// Unknown event kinds of a known provider are ignored, but only once their
// signature holds.
func TestParseUnknownEvent(t *testing.T) {
	tests := []struct {
		provider, kind, file, wantMsg string
	}{
		{GitHub, "issues", "github-issues.json", "unknown event: X-GitHub-Event=issues"},
		{GitHub, "delete", "github-delete.json", "unknown event: X-GitHub-Event=delete"},
		{Gitea, "delete", "gitea-delete-event.json", "unknown event: X-Gitea-Event=delete"},
		{Gitea, "create", "gitea-delete-event.json", "unknown event: X-Gitea-Event=create"},
		{GitLab, "Merge Request Hook", "gitlab-push.json", `unknown event: X-Gitlab-Event="Merge Request Hook"`},
		{GitLab, "System Hook", "gitlab-push.json", `unknown event: X-Gitlab-Event="System Hook"`},
		{BitbucketCloud, "pullrequest:created", "bitbucket-cloud-push.json", "unknown event: X-Event-Key=pullrequest:created"},
		{BitbucketServer, "pr:opened", "bitbucket-server-refs-changed.json", "unknown event: X-Event-Key=pr:opened"},
		{BitbucketServer, "mirror:repo_synchronized", "bitbucket-server-refs-changed.json", "unknown event: X-Event-Key=mirror:repo_synchronized"},
	}
	for _, tc := range tests {
		t.Run(tc.provider+" "+tc.kind, func(t *testing.T) {
			body := readFixture(t, tc.file)
			_, err := Parse(signedHeaders(tc.provider, tc.kind, body, testSecret), body, testSecret, false)
			var ig *IgnoredError
			if !errors.As(err, &ig) || ig.Reason != ReasonNotPush || ig.Msg != tc.wantMsg {
				t.Errorf("Parse: got %#v, want *IgnoredError{%q, %q}", err, ReasonNotPush, tc.wantMsg)
			}
			_, err = Parse(signedHeaders(tc.provider, tc.kind, body, "wrong secret"), body, testSecret, false)
			if !errors.Is(err, ErrUnauthorized) {
				t.Errorf("Parse with a wrong signature: got %v, want ErrUnauthorized first", err)
			}
		})
	}
}

func TestParseSecretRequired(t *testing.T) {
	body := readFixture(t, "github-push.json")
	unsigned := signedHeaders(GitHub, "push", body, "")

	_, err := Parse(unsigned, body, "", false)
	if !errors.Is(err, ErrUnauthorized) {
		t.Errorf("Parse with no secret and insecure=false: got %v, want ErrUnauthorized", err)
	}
	if ev, err := Parse(unsigned, body, "", true); err != nil || len(ev.Changes) != 1 {
		t.Errorf("Parse with no secret and insecure=true: got %+v, %v; want the event", ev, err)
	}
	// A configured secret is checked even when insecure is set.
	if _, err := Parse(unsigned, body, testSecret, true); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("Parse unsigned with a secret and insecure=true: got %v, want ErrUnauthorized", err)
	}
}

// Malformed deliveries are refused with a message that says where; the
// signature is checked before any of it.
func TestParseMalformed(t *testing.T) {
	const hash = releaseTip
	tests := []struct {
		name, provider, kind, body, wantMsg string
	}{
		{"empty body", GitHub, "push", ``, "malformed JSON at byte 0: unexpected end of JSON input"},
		{"truncated", GitHub, "push", `{"ref": "refs/heads/release", "after": `, "malformed JSON at byte 39: unexpected end of JSON input"},
		{"syntax", GitLab, "Push Hook", `{"ref": refs/heads/release}`, "malformed JSON at byte 9: invalid character 'r' looking for beginning of value"},
		{"trailing garbage", Gitea, "push", `{"ref": "refs/heads/release"} x`, "malformed JSON at byte 31: invalid character 'x' after top-level value"},
		{"wrong type", BitbucketCloud, "repo:push", `{"repository": {"full_name": "team/app"}, "push": {"changes": "all"}}`, "malformed JSON at byte 67: push.changes is string, want an array"},
		{"wrong nested type", BitbucketServer, "repo:refs_changed", `{"repository": {"slug": "app", "project": {"key": 7}}, "changes": []}`, "malformed JSON at byte 51: repository.project.key is number, want a string"},
		{"top-level array", GitHub, "push", `[]`, "malformed JSON at byte 1: the payload is array, want an object"},
		{"bad ping", GitHub, "ping", `{"hook_id": 1, "repository": "team/app"}`, "malformed JSON at byte 39: repository is string, want an object"},

		{"cloud no repository", BitbucketCloud, "repo:push", `{"push": {"changes": []}}`, "repository.full_name missing"},
		{"cloud no push", BitbucketCloud, "repo:push", `{"repository": {"full_name": "team/app"}}`, "push.changes missing"},
		{"cloud null changes", BitbucketCloud, "repo:push", `{"repository": {"full_name": "team/app"}, "push": {"changes": null}}`, "push.changes missing"},
		{"cloud new and old null", BitbucketCloud, "repo:push", `{"repository": {"full_name": "team/app"}, "push": {"changes": [{"new": null, "old": null}]}}`, "push.changes[0]: both new and old are null"},
		{"cloud no name", BitbucketCloud, "repo:push", `{"repository": {"full_name": "team/app"}, "push": {"changes": [{"new": {"type": "branch", "target": {"hash": "` + hash + `"}}}]}}`, "push.changes[0].new.name missing"},
		{"cloud no target", BitbucketCloud, "repo:push", `{"repository": {"full_name": "team/app"}, "push": {"changes": [{"new": {"type": "branch", "name": "release"}}]}}`, "push.changes[0].new.target.hash missing"},
		{"cloud garbage hash", BitbucketCloud, "repo:push", `{"repository": {"full_name": "team/app"}, "push": {"changes": [{"new": {"type": "branch", "name": "release", "target": {"hash": "HEAD; rm -rf /"}}}]}}`, `push.changes[0].new.target.hash "head; rm -rf /" is not a 40- or 64-digit hex hash`},
		{"cloud short hash", BitbucketCloud, "repo:push", `{"repository": {"full_name": "team/app"}, "push": {"changes": [{"new": {"type": "branch", "name": "release", "target": {"hash": "9f2c4e1"}}}]}}`, "push.changes[0].new.target.hash 9f2c4e1 is not a 40- or 64-digit hex hash"},
		{"cloud deleted no name", BitbucketCloud, "repo:push", `{"repository": {"full_name": "team/app"}, "push": {"changes": [{"new": null, "old": {"type": "branch"}}]}}`, "push.changes[0].old.name missing"},

		{"server no slug", BitbucketServer, "repo:refs_changed", `{"repository": {"project": {"key": "OPS"}}, "changes": []}`, "repository.slug missing"},
		{"server no project", BitbucketServer, "repo:refs_changed", `{"repository": {"slug": "app"}, "changes": []}`, "repository.project.key missing"},
		{"server no changes", BitbucketServer, "repo:refs_changed", `{"repository": {"slug": "app", "project": {"key": "OPS"}}}`, "changes missing"},
		{"server no type", BitbucketServer, "repo:refs_changed", `{"repository": {"slug": "app", "project": {"key": "OPS"}}, "changes": [{"ref": {"id": "refs/heads/release"}, "toHash": "` + hash + `"}]}`, "changes[0].type missing"},
		{"server odd type", BitbucketServer, "repo:refs_changed", `{"repository": {"slug": "app", "project": {"key": "OPS"}}, "changes": [{"ref": {"id": "refs/heads/release"}, "toHash": "` + hash + `", "type": "MOVE"}]}`, "changes[0].type MOVE is not ADD, UPDATE or DELETE"},
		{"server no ref", BitbucketServer, "repo:refs_changed", `{"repository": {"slug": "app", "project": {"key": "OPS"}}, "changes": [{"toHash": "` + hash + `", "type": "UPDATE"}]}`, "changes[0].refId missing"},
		{"server garbage hash", BitbucketServer, "repo:refs_changed", `{"repository": {"slug": "app", "project": {"key": "OPS"}}, "changes": [{"ref": {"id": "refs/heads/release"}, "toHash": "` + strings.Repeat("g", 40) + `", "type": "UPDATE"}]}`, "changes[0].toHash gggggggggggggggggggggggggggggggggggggggg is not a 40- or 64-digit hex hash"},

		{"github no repository", GitHub, "push", `{"ref": "refs/heads/release", "after": "` + hash + `"}`, "repository.full_name missing"},
		{"github no ref", GitHub, "push", `{"after": "` + hash + `", "repository": {"full_name": "team/app"}}`, "ref missing"},
		{"github no after", GitHub, "push", `{"ref": "refs/heads/release", "repository": {"full_name": "team/app"}}`, "after missing"},
		{"github garbage after", GitHub, "push", `{"ref": "refs/heads/release", "after": "--upload-pack=evil", "repository": {"full_name": "team/app"}}`, "after --upload-pack=evil is not a 40- or 64-digit hex hash"},
		{"github 41 digits", GitHub, "push", `{"ref": "refs/heads/release", "after": "` + hash + `0", "repository": {"full_name": "team/app"}}`, "after " + hash + "0 is not a 40- or 64-digit hex hash"},

		{"gitlab no project", GitLab, "Push Hook", `{"ref": "refs/heads/release", "after": "` + hash + `"}`, "project.path_with_namespace missing"},
		{"gitlab no after", GitLab, "Push Hook", `{"ref": "refs/heads/release", "project": {"path_with_namespace": "team/app"}}`, "after missing"},
		{"gitlab garbage checkout_sha", GitLab, "Push Hook", `{"ref": "refs/heads/release", "after": "` + hash + `", "checkout_sha": "xyz", "project": {"path_with_namespace": "team/app"}}`, "checkout_sha xyz is not a 40- or 64-digit hex hash"},

		{"gitea no repository", Gitea, "push", `{"ref": "refs/heads/release", "after": "` + hash + `"}`, "repository.full_name missing"},
		{"gitea garbage after", Gitea, "push", `{"ref": "refs/heads/release", "after": "main", "repository": {"full_name": "team/app"}}`, "after main is not a 40- or 64-digit hex hash"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := []byte(tc.body)
			ev, err := Parse(signedHeaders(tc.provider, tc.kind, body, testSecret), body, testSecret, false)
			var bad *BadRequestError
			if !errors.As(err, &bad) {
				t.Fatalf("Parse: got %+v, %v; want *BadRequestError", ev, err)
			}
			if bad.Msg != tc.wantMsg {
				t.Errorf("Parse: got message %q, want %q", bad.Msg, tc.wantMsg)
			}
			_, err = Parse(signedHeaders(tc.provider, tc.kind, body, "not the secret"), body, testSecret, false)
			if !errors.Is(err, ErrUnauthorized) {
				t.Errorf("Parse with a wrong signature: got %v, want ErrUnauthorized before any parsing", err)
			}
		})
	}
}

// Decide over events built by hand: the cases payloads rarely show.
func TestDecide(t *testing.T) {
	const a, b = releaseTip, mainTip
	rel := func(commit string) Change {
		return Change{Ref: "refs/heads/release", Branch: "release", Commit: commit}
	}
	push := func(changes ...Change) *Event {
		return &Event{Provider: BitbucketCloud, Kind: "repo:push", Repo: "Team/App", Changes: changes}
	}
	deleted := Change{Ref: "refs/heads/release", Branch: "release", Deleted: true}
	tag := Change{Ref: "refs/tags/release", Tag: true, Commit: a}
	other := Change{Ref: "refs/heads/main", Branch: "main", Commit: b}
	tests := []struct {
		name       string
		ev         *Event
		branch     string
		repo       string
		want       Change
		wantReason string
	}{
		{"one change", push(rel(a)), "release", "", rel(a), ""},
		{"last of several", push(rel(a), other, rel(b)), "release", "", rel(b), ""},
		{"deleted then created", push(deleted, rel(b)), "release", "", rel(b), ""},
		{"created then deleted", push(rel(a), deleted), "release", "", Change{}, ReasonBranchDelete},
		{"repo case-insensitive", push(rel(a)), "release", "team/app", rel(a), ""},
		{"other repo", push(rel(a)), "release", "team/other", Change{}, ReasonOtherRepo},
		{"branch is case-sensitive", push(rel(a)), "Release", "", Change{}, ReasonOtherBranch},
		{"tag named like the branch", push(tag), "release", "", Change{}, ReasonTag},
		{"tag and other branch", push(tag, other), "release", "", Change{}, ReasonOtherBranch},
		{"empty", push(), "release", "", Change{}, ReasonEmptyPush},
		{"empty branch asked", push(Change{Ref: "refs/heads/"}), "", "", Change{}, ReasonOtherBranch},
		{"github ping", &Event{Provider: GitHub, Kind: "ping"}, "release", "", Change{}, ReasonPing},
		{"server ping", &Event{Provider: BitbucketServer, Kind: "diagnostics:ping"}, "release", "", Change{}, ReasonPing},
		{"not a push", &Event{Provider: GitHub, Kind: "issues", Changes: []Change{rel(a)}}, "release", "", Change{}, ReasonNotPush},
		{"unknown provider", &Event{Provider: "gogs", Kind: "push", Changes: []Change{rel(a)}}, "release", "", Change{}, ReasonNotPush},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decide(tc.ev, tc.branch, tc.repo)
			checkDecision(t, got, err, tc.want, tc.wantReason)
		})
	}
	t.Run("invalid commit", func(t *testing.T) {
		_, err := Decide(push(rel("HEAD")), "release", "")
		var bad *BadRequestError
		if !errors.As(err, &bad) {
			t.Errorf("Decide: got %v, want *BadRequestError", err)
		}
	})
}

func TestPrintable(t *testing.T) {
	tests := map[string]string{
		"release":               "release",
		"":                      `""`,
		"Push Hook":             `"Push Hook"`,
		"a\nb":                  `"a\nb"`,
		strings.Repeat("x", 65): `"` + strings.Repeat("x", 64) + `…"`,
	}
	for in, want := range tests {
		if got := printable(in); got != want {
			t.Errorf("printable(%q): got %s, want %s", in, got, want)
		}
	}
}
