package testhosts

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// BitbucketPush is a Bitbucket Cloud repo:push payload, as documented, of
// the repository whose full name is repo (e.g. team/app), moving branch to
// commit.
func BitbucketPush(repo, branch, commit string) []byte {
	_, name, _ := strings.Cut(repo, "/")
	body, _ := json.Marshal(map[string]any{
		"actor":      map[string]any{"display_name": "Ada"},
		"repository": map[string]any{"full_name": repo, "name": name},
		"push": map[string]any{"changes": []any{map[string]any{
			"new":     map[string]any{"type": "branch", "name": branch, "target": map[string]any{"type": "commit", "hash": commit}},
			"old":     map[string]any{"type": "branch", "name": branch, "target": map[string]any{"type": "commit", "hash": strings.Repeat("0", 39) + "1"}},
			"created": false, "closed": false, "forced": false,
		}}},
	})
	return body
}

// BitbucketRequest is the delivery Bitbucket Cloud POSTs to url for a
// repo:push with body (BitbucketPush): its headers, a new random delivery
// id (X-Request-UUID), and the signature Bitbucket computes, HMAC-SHA256
// of the body under secret in X-Hub-Signature.
func BitbucketRequest(ctx context.Context, url, secret string, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Bitbucket-Webhooks/2.0")
	req.Header.Set("X-Event-Key", "repo:push")
	req.Header.Set("X-Request-UUID", newUUID())
	req.Header.Set("X-Hook-UUID", "{"+newUUID()+"}")
	req.Header.Set("X-Hub-Signature", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	return req, nil
}

// newUUID is a random (version 4) UUID.
func newUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
