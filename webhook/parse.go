package webhook

import (
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
)

// Delivery names a request from its headers alone, before anything is
// verified: for logging every request, rejected ones included.
type Delivery struct {
	// Provider is as in Event.Provider, or "" when no provider header is
	// present.
	Provider string
	// Kind is the event name from the provider's event header.
	Kind string
	// ID is the delivery id, as in Event.DeliveryID.
	ID string
}

// provider knows one forge's headers, signature and payloads.
type provider struct {
	verify func(h http.Header, body []byte, secret string) error
	// parse decodes body for the event kind, and returns an *IgnoredError
	// for kinds that are neither pushes nor pings.
	parse func(kind string, body []byte) (*Event, error)
}

var providers = map[string]provider{
	BitbucketCloud:  {verifyBitbucket, parseBitbucketCloud},
	BitbucketServer: {verifyBitbucket, parseBitbucketServer},
	GitHub:          {verifyGitHub, parseGitHub},
	GitLab:          {func(h http.Header, _ []byte, s string) error { return verifyGitLab(h, s) }, parseGitLab},
	Gitea:           {verifyGitea, parseGitea},
}

// Identify recognises the provider, event kind and delivery id of a request
// from its headers. Gitea and Forgejo are checked first, since they also
// send GitHub's and Gogs' headers.
func Identify(h http.Header) Delivery {
	first := func(names ...string) string {
		for _, n := range names {
			if v := h.Get(n); v != "" {
				return v
			}
		}
		return ""
	}
	has := func(name string) bool { return len(h.Values(name)) > 0 }
	switch {
	case has("X-Gitea-Event") || has("X-Forgejo-Event"):
		return Delivery{Gitea, first("X-Gitea-Event", "X-Forgejo-Event"), first("X-Gitea-Delivery", "X-Forgejo-Delivery")}
	case has("X-Gitlab-Event"):
		return Delivery{GitLab, h.Get("X-Gitlab-Event"), first("Idempotency-Key", "X-Gitlab-Event-UUID")}
	case has("X-GitHub-Event"):
		return Delivery{GitHub, h.Get("X-GitHub-Event"), h.Get("X-GitHub-Delivery")}
	case has("X-Event-Key"):
		kind := h.Get("X-Event-Key")
		cloud := Delivery{BitbucketCloud, kind, h.Get("X-Request-UUID")}
		server := Delivery{BitbucketServer, kind, h.Get("X-Request-Id")}
		switch {
		case kind == "repo:push":
			return cloud
		case kind == "repo:refs_changed" || kind == "diagnostics:ping":
			return server
		case has("X-Request-UUID") || has("X-Hook-UUID") || !has("X-Request-Id"):
			return cloud
		}
		return server
	}
	return Delivery{}
}

// Parse verifies the signature of a delivery over its raw body, then
// parses it. The errors it returns:
//   - *BadRequestError when no provider header is present, or (after the
//     signature) when the payload is malformed or lacks a required field;
//   - *SignatureError (errors.Is ErrUnauthorized) for a missing or wrong
//     signature or token, and when secret is "" but insecure is false;
//   - *IgnoredError (errors.Is ErrIgnored) with Reason ReasonNotPush, after
//     the signature, for an event kind that is neither a push nor a ping.
//
// With secret "" and insecure true, nothing is verified. Parse is safe for
// concurrent use.
func Parse(h http.Header, body []byte, secret string, insecure bool) (*Event, error) {
	d := Identify(h)
	p, ok := providers[d.Provider]
	if !ok {
		return nil, badRequest("no webhook provider headers (X-Event-Key, X-GitHub-Event, X-Gitlab-Event, X-Gitea-Event)")
	}
	if secret == "" && !insecure {
		return nil, refused("no webhook secret configured")
	}
	if secret != "" {
		if err := p.verify(h, body, secret); err != nil {
			return nil, err
		}
	}
	ev, err := p.parse(d.Kind, body)
	if err != nil {
		return nil, err
	}
	ev.Provider, ev.Kind, ev.DeliveryID = d.Provider, d.Kind, d.ID
	return ev, nil
}

// isPing tells the event kinds that only test the webhook.
func isPing(provider, kind string) bool {
	return provider == GitHub && kind == "ping" ||
		provider == BitbucketServer && kind == "diagnostics:ping"
}

// isPush tells the event kinds that carry ref changes.
func isPush(provider, kind string) bool {
	switch provider {
	case BitbucketCloud:
		return kind == "repo:push"
	case BitbucketServer:
		return kind == "repo:refs_changed"
	case GitHub, Gitea:
		return kind == "push"
	case GitLab:
		return kind == "Push Hook" || kind == "Tag Push Hook"
	}
	return false
}

func unknownEvent(header, kind string) error {
	return ignored(ReasonNotPush, "unknown event: %s=%s", header, printable(kind))
}

// decode unmarshals a payload, and says where it is malformed.
func decode(body []byte, v any) error {
	err := json.Unmarshal(body, v)
	if err == nil {
		return nil
	}
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return badRequest("malformed JSON at byte %d: %s", se.Offset, se.Error())
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "the payload"
		}
		return badRequest("malformed JSON at byte %d: %s is %s, want %s", te.Offset, field, te.Value, jsonType(te.Type))
	}
	return badRequest("malformed JSON: %v", err)
}

// jsonType names the JSON type that decodes into t.
func jsonType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Int, reflect.Int64, reflect.Float64:
		return "a number"
	}
	return t.Kind().String()
}

// newChange builds the Change of ref, validating commit unless deleted.
// refField and commitField name the payload fields, for error messages.
func newChange(ref, refField, commit, commitField string, deleted bool) (Change, error) {
	if ref == "" {
		return Change{}, badRequest("%s missing", refField)
	}
	c := Change{Ref: ref, Deleted: deleted}
	if b, ok := strings.CutPrefix(ref, "refs/heads/"); ok {
		c.Branch = b
	} else if strings.HasPrefix(ref, "refs/tags/") {
		c.Tag = true
	}
	if deleted {
		return c, nil
	}
	if commit == "" {
		return Change{}, badRequest("%s missing", commitField)
	}
	commit = strings.ToLower(commit)
	if !validCommit(commit) {
		return Change{}, badRequest("%s %s is not a 40- or 64-digit hex hash", commitField, printable(commit))
	}
	c.Commit = commit
	return c, nil
}

// validCommit tells a full SHA-1 or SHA-256 commit hash in lower-case hex.
func validCommit(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && (s[i] < 'a' || s[i] > 'f') {
			return false
		}
	}
	return true
}

// isHex tells a non-empty string of hex digits (either case).
func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i] | 0x20 // lower-case letters; digits are unchanged
		if (s[i] < '0' || s[i] > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return s != ""
}

// isZeroHash tells the all-zero hash that forges send as the new value of a
// deleted ref.
func isZeroHash(s string) bool {
	return (len(s) == 40 || len(s) == 64) && strings.Trim(s, "0") == ""
}
