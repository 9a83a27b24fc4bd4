package testhosts

import (
	"encoding/json"
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
