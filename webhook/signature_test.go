package webhook

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

// sigCase changes the headers of a correctly signed delivery.
type sigCase struct {
	name    string
	edit    func(h http.Header, body []byte)
	wantErr string // "" means accepted; otherwise a substring of the reason
}

func set(name, value string) func(http.Header, []byte) {
	return func(h http.Header, _ []byte) { h.Set(name, value) }
}

func del(names ...string) func(http.Header, []byte) {
	return func(h http.Header, _ []byte) {
		for _, n := range names {
			h.Del(n)
		}
	}
}

func both(fs ...func(http.Header, []byte)) func(http.Header, []byte) {
	return func(h http.Header, b []byte) {
		for _, f := range fs {
			f(h, b)
		}
	}
}

// prefixedCases are the cases of a "sha256=<hex>" header.
func prefixedCases(name string) []sigCase {
	wrongSecret := func(h http.Header, b []byte) { h.Set(name, "sha256="+hmacHex("not the secret", b)) }
	otherBody := func(h http.Header, b []byte) { h.Set(name, "sha256="+hmacHex(testSecret, append(b, ' '))) }
	upper := func(h http.Header, b []byte) { h.Set(name, "SHA256="+strings.ToUpper(hmacHex(testSecret, b))) }
	bare := func(h http.Header, b []byte) { h.Set(name, hmacHex(testSecret, b)) }
	twice := func(h http.Header, b []byte) { h.Add(name, "sha256="+hmacHex(testSecret, b)) }
	return []sigCase{
		{"good", func(http.Header, []byte) {}, ""},
		{"upper-case hex", upper, ""},
		{"wrong secret", wrongSecret, "does not match the body"},
		{"signature of another body", otherBody, "does not match the body"},
		{"missing", del(name, "X-Hub-Signature"), "missing " + name + " header"},
		{"empty", set(name, ""), "empty signature"},
		{"prefix only", set(name, "sha256="), "empty signature"},
		{"no prefix", bare, "no sha256= prefix"},
		{"sha1", set(name, "sha1=0123456789abcdef0123456789abcdef01234567"), "unsupported algorithm sha1 (configure SHA-256)"},
		{"sha512", set(name, "sha512="+strings.Repeat("ab", 64)), "unsupported algorithm sha512"},
		{"odd algorithm", set(name, "<script>=00"), "unsupported algorithm (unnamed)"},
		{"non-hex", set(name, "sha256="+strings.Repeat("zz", 32)), "not hex"},
		{"short", set(name, "sha256=abcdef"), "wrong length"},
		{"long", set(name, "sha256="+strings.Repeat("ab", 33)), "wrong length"},
		{"odd length", set(name, "sha256="+strings.Repeat("a", 63)), "wrong length"},
		{"two headers", twice, "several " + name + " headers"},
	}
}

func TestSignature(t *testing.T) {
	tests := []struct {
		provider, kind, file string
		cases                []sigCase
	}{
		{BitbucketCloud, "repo:push", "bitbucket-cloud-push.json", prefixedCases("X-Hub-Signature")},
		{BitbucketServer, "repo:refs_changed", "bitbucket-server-refs-changed.json", prefixedCases("X-Hub-Signature")},
		{BitbucketServer, "diagnostics:ping", "bitbucket-server-ping.json", prefixedCases("X-Hub-Signature")},
		{GitHub, "push", "github-push.json", append(prefixedCases("X-Hub-Signature-256"),
			sigCase{"sha1 only", del("X-Hub-Signature-256"), "sha1) only; GitHub sends X-Hub-Signature-256 when a secret is set"},
			sigCase{"none", del("X-Hub-Signature-256", "X-Hub-Signature"), "missing X-Hub-Signature-256 header"},
		)},
		{GitHub, "ping", "github-ping.json", prefixedCases("X-Hub-Signature-256")},
		{Gitea, "push", "gitea-push.json", []sigCase{
			{"good", func(http.Header, []byte) {}, ""},
			{"X-Gitea-Signature only", del("X-Hub-Signature-256", "X-Hub-Signature", "X-Gogs-Signature"), ""},
			{"X-Hub-Signature-256 only", del("X-Gitea-Signature", "X-Gogs-Signature", "X-Hub-Signature"), ""},
			{"X-Gitea-Signature wrong", func(h http.Header, b []byte) { h.Set("X-Gitea-Signature", hmacHex("not the secret", b)) }, "does not match the body"},
			{"X-Gitea-Signature of another body", func(h http.Header, b []byte) { h.Set("X-Gitea-Signature", hmacHex(testSecret, b[1:])) }, "does not match the body"},
			{"X-Gitea-Signature empty (no secret set in Gitea)", set("X-Gitea-Signature", ""), "X-Gitea-Signature: empty signature"},
			{"X-Gitea-Signature prefix only", set("X-Gitea-Signature", "sha256="), "empty signature"},
			{"X-Gitea-Signature non-hex", set("X-Gitea-Signature", strings.Repeat("xy", 32)), "not hex"},
			{"X-Gitea-Signature short", set("X-Gitea-Signature", "deadbeef"), "wrong length"},
			{"X-Gitea-Signature sha1", func(h http.Header, b []byte) { h.Set("X-Gitea-Signature", hmacSHA1Hex(testSecret, b)) }, "wrong length"},
			{"sha1 only", del("X-Gitea-Signature", "X-Hub-Signature-256"), "missing X-Gitea-Signature (or X-Hub-Signature-256) header"},
			{"missing", del("X-Gitea-Signature", "X-Hub-Signature-256", "X-Hub-Signature", "X-Gogs-Signature"), "missing X-Gitea-Signature (or X-Hub-Signature-256) header"},
			{"X-Hub-Signature-256 wrong", both(del("X-Gitea-Signature"), set("X-Hub-Signature-256", "sha256="+strings.Repeat("0", 64))), "does not match the body"},
			{"X-Hub-Signature-256 prefix only", both(del("X-Gitea-Signature"), set("X-Hub-Signature-256", "sha256=")), "empty signature"},
			{"X-Forgejo-Signature wrong", both(del("X-Gitea-Signature"), set("X-Forgejo-Signature", strings.Repeat("ab", 32))), "X-Forgejo-Signature: signature does not match the body"},
		}},
		{GitLab, "Push Hook", "gitlab-push.json", []sigCase{
			{"good", func(http.Header, []byte) {}, ""},
			{"wrong token", set("X-Gitlab-Token", "not the secret"), "X-Gitlab-Token does not match the secret"},
			{"prefix of the secret", set("X-Gitlab-Token", testSecret[:5]), "does not match"},
			{"secret and more", set("X-Gitlab-Token", testSecret+"x"), "does not match"},
			{"other case", set("X-Gitlab-Token", strings.ToUpper(testSecret)), "does not match"},
			{"missing", del("X-Gitlab-Token"), "missing X-Gitlab-Token header"},
			{"empty", set("X-Gitlab-Token", ""), "empty X-Gitlab-Token header"},
			{"an HMAC instead", func(h http.Header, b []byte) { h.Set("X-Gitlab-Token", "sha256="+hmacHex(testSecret, b)) }, "does not match"},
			{"two headers", func(h http.Header, _ []byte) { h.Add("X-Gitlab-Token", testSecret) }, "several X-Gitlab-Token headers"},
		}},
	}
	for _, tt := range tests {
		body := readFixture(t, tt.file)
		for _, tc := range tt.cases {
			t.Run(tt.provider+" "+tt.kind+"/"+tc.name, func(t *testing.T) {
				h := signedHeaders(tt.provider, tt.kind, body, testSecret)
				tc.edit(h, body)
				_, err := Parse(h, body, testSecret, false)
				if tc.wantErr == "" {
					if err != nil && !errors.Is(err, ErrIgnored) {
						t.Fatalf("Parse: got error %v, want the signature accepted", err)
					}
					return
				}
				checkRefused(t, err, body, tc.wantErr)
			})
		}
	}
}

// checkRefused asserts err is a *SignatureError saying want, and that its
// message reveals neither the secret nor any MAC of body under it.
func checkRefused(t *testing.T, err error, body []byte, want string) {
	t.Helper()
	var se *SignatureError
	if !errors.As(err, &se) {
		t.Fatalf("Parse: got %v, want *SignatureError", err)
	}
	if !errors.Is(err, ErrUnauthorized) {
		t.Errorf("Parse: errors.Is(%v, ErrUnauthorized) = false, want true", err)
	}
	if !strings.Contains(se.Reason, want) {
		t.Errorf("Parse: got reason %q, want it to contain %q", se.Reason, want)
	}
	msg := strings.ToLower(err.Error())
	for _, secretish := range []string{testSecret, hmacHex(testSecret, body), hmacSHA1Hex(testSecret, body)} {
		for _, s := range []string{secretish, secretish[:16], secretish[len(secretish)-16:]} {
			if strings.Contains(msg, strings.ToLower(s)) {
				t.Errorf("Parse: error %q reveals %q", err, s)
			}
		}
	}
}
