package webhook

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzEvents are the provider and event kinds FuzzParse sends payloads as:
// every kind that is parsed, and one that is not.
var fuzzEvents = []struct{ provider, kind string }{
	{BitbucketCloud, "repo:push"},
	{BitbucketCloud, "pullrequest:created"},
	{BitbucketServer, "repo:refs_changed"},
	{BitbucketServer, "diagnostics:ping"},
	{BitbucketServer, "pr:merged"},
	{GitHub, "push"},
	{GitHub, "ping"},
	{GitHub, "delete"},
	{GitLab, "Push Hook"},
	{GitLab, "Tag Push Hook"},
	{GitLab, "Note Hook"},
	{Gitea, "push"},
	{Gitea, "delete"},
}

// fuzzSeeds adds every testdata payload once per event of fuzzEvents.
func fuzzSeeds(f *testing.F, add func(sel uint8, body []byte)) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed payloads in testdata: %v", err)
	}
	for _, name := range files {
		body, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		for i := range fuzzEvents {
			add(uint8(i), body)
		}
	}
}

// FuzzParse sends arbitrary bodies, correctly signed, as every provider and
// event kind, so that the fuzzer reaches the parsers. Parse must not panic
// nor refuse the signature; what it accepts must be well-formed, and Decide
// must never pick a change with an invalid commit or to another branch.
func FuzzParse(f *testing.F) {
	fuzzSeeds(f, func(sel uint8, body []byte) { f.Add(sel, body) })
	f.Fuzz(func(t *testing.T, sel uint8, body []byte) {
		e := fuzzEvents[int(sel)%len(fuzzEvents)]
		ev, err := Parse(signedHeaders(e.provider, e.kind, body, testSecret), body, testSecret, false)
		if err != nil {
			var bad *BadRequestError
			if !errors.As(err, &bad) && !errors.Is(err, ErrIgnored) {
				t.Fatalf("Parse: got %T %v, want *BadRequestError or *IgnoredError", err, err)
			}
			return
		}
		if ev.Provider != e.provider || ev.Kind != e.kind {
			t.Errorf("Parse: got %s %s, want %s %s", ev.Provider, ev.Kind, e.provider, e.kind)
		}
		for i, c := range ev.Changes {
			checkChange(t, i, c)
		}
		branches := []string{"release", "main"}
		for _, c := range ev.Changes {
			branches = append(branches, c.Branch)
		}
		for _, branch := range branches {
			for _, repo := range []string{"", ev.Repo, "team/app"} {
				c, err := Decide(ev, branch, repo)
				if err != nil {
					if !errors.Is(err, ErrIgnored) {
						t.Errorf("Decide(%q, %q): got %v, want a change or *IgnoredError", branch, repo, err)
					}
					continue
				}
				if !validCommit(c.Commit) || c.Branch != branch || c.Tag || c.Deleted {
					t.Errorf("Decide(%q, %q): got %+v", branch, repo, c)
				}
			}
		}
	})
}

// checkChange asserts the invariants of a change Parse returned.
func checkChange(t *testing.T, i int, c Change) {
	t.Helper()
	switch {
	case c.Ref == "":
		t.Errorf("change %d: empty ref: %+v", i, c)
	case c.Deleted && c.Commit != "":
		t.Errorf("change %d: deleted with a commit: %+v", i, c)
	case !c.Deleted && !validCommit(c.Commit):
		t.Errorf("change %d: invalid commit: %+v", i, c)
	case c.Tag && c.Branch != "":
		t.Errorf("change %d: both tag and branch: %+v", i, c)
	case c.Branch != "" && c.Ref != "refs/heads/"+c.Branch:
		t.Errorf("change %d: branch does not match ref: %+v", i, c)
	}
}

// fuzzSigners are the signature headers FuzzSignature fills, and how each
// provider would sign correctly.
var fuzzSigners = []struct {
	provider, kind, header string
	good                   func(body []byte) string
}{
	{BitbucketCloud, "repo:push", "X-Hub-Signature", func(b []byte) string { return "sha256=" + hmacHex(testSecret, b) }},
	{BitbucketServer, "repo:refs_changed", "X-Hub-Signature", func(b []byte) string { return "sha256=" + hmacHex(testSecret, b) }},
	{GitHub, "push", "X-Hub-Signature-256", func(b []byte) string { return "sha256=" + hmacHex(testSecret, b) }},
	{Gitea, "push", "X-Gitea-Signature", func(b []byte) string { return hmacHex(testSecret, b) }},
	{GitLab, "Push Hook", "X-Gitlab-Token", func([]byte) string { return testSecret }},
}

// FuzzSignature sends arbitrary signature headers: Parse must not panic,
// must accept only a correct signature, and must never reveal the secret or
// the expected MAC.
func FuzzSignature(f *testing.F) {
	body := []byte(`{"ref": "refs/heads/release"}`)
	for i, s := range fuzzSigners {
		for _, v := range []string{s.good(body), "", "sha256=", "sha1=abc", "sha256=" + strings.Repeat("0", 64), strings.ToUpper(s.good(body)), " " + s.good(body) + " "} {
			f.Add(uint8(i), v, body)
		}
	}
	f.Fuzz(func(t *testing.T, sel uint8, value string, body []byte) {
		s := fuzzSigners[int(sel)%len(fuzzSigners)]
		h := signedHeaders(s.provider, s.kind, body, "")
		h[http.CanonicalHeaderKey(s.header)] = []string{value}
		_, err := Parse(h, body, testSecret, false)
		var se *SignatureError
		if errors.As(err, &se) {
			msg := strings.ToLower(err.Error())
			for _, secret := range []string{testSecret, hmacHex(testSecret, body)} {
				if strings.Contains(msg, strings.ToLower(secret)) {
					t.Fatalf("error %q reveals %q", err, secret)
				}
			}
			return
		}
		good := strings.TrimSpace(value) == s.good(body) ||
			s.provider != GitLab && strings.EqualFold(strings.TrimSpace(value), s.good(body)) ||
			s.provider == Gitea && strings.EqualFold(strings.TrimSpace(value), "sha256="+s.good(body))
		if !good {
			t.Fatalf("Parse accepted %s: %q (err %v)", s.header, value, err)
		}
	})
}
