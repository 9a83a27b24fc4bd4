// Package webhook receives the push webhooks of Bitbucket Cloud, Bitbucket
// Server / Data Center, GitHub, GitLab and Gitea/Forgejo: it verifies each
// delivery's signature over the raw body, parses the payload into an Event
// and decides whether it asks to deploy the release branch. It wraps echo
// (the HTTP server); the parsing half uses net/http types only.
package webhook

import (
	"errors"
	"fmt"
	"strings"
)

// Provider names, as in Event.Provider.
const (
	BitbucketCloud  = "bitbucket-cloud"
	BitbucketServer = "bitbucket-server"
	GitHub          = "github"
	GitLab          = "gitlab"
	Gitea           = "gitea"
)

// Event is a verified, parsed webhook delivery.
type Event struct {
	// Provider is one of BitbucketCloud, BitbucketServer, GitHub, GitLab
	// and Gitea (which covers Forgejo).
	Provider string
	// Kind is the provider's event name from its header: "repo:push",
	// "repo:refs_changed", "diagnostics:ping", "push", "ping", "Push Hook",
	// "Tag Push Hook".
	Kind string
	// DeliveryID identifies the delivery, and is the same when the forge
	// redelivers it: X-Request-UUID (Bitbucket Cloud), X-Request-Id
	// (Bitbucket Server), X-GitHub-Delivery, Idempotency-Key or else
	// X-Gitlab-Event-UUID (GitLab), X-Gitea-Delivery or X-Forgejo-Delivery.
	// Empty when the header is absent.
	DeliveryID string
	// Repo is the repository's full name as the provider gives it:
	// "team/app", or "PROJECT/repo" for Bitbucket Server. It may be empty
	// for a ping.
	Repo string
	// Actor is who pushed (display name or user name), for the record.
	Actor string
	// Changes are the ref changes of the push, in payload order; empty for
	// pings and for pushes that changed no ref.
	Changes []Change
}

// Change is one ref changed by a push.
type Change struct {
	// Ref is the full ref name, such as "refs/heads/release" or "refs/tags/v1".
	Ref string
	// Branch is the branch name when Ref is a branch, "" otherwise.
	Branch string
	// Tag is true when Ref is a tag.
	Tag bool
	// Deleted is true when the push deleted Ref.
	Deleted bool
	// Commit is the ref's new commit hash, 40 or 64 lower-case hex digits;
	// "" when Deleted.
	Commit string
}

// Reasons of an IgnoredError.
const (
	ReasonPing         = "ping"
	ReasonNotPush      = "not a push event"
	ReasonEmptyPush    = "empty push"
	ReasonOtherRepo    = "other repository"
	ReasonOtherBranch  = "other branch"
	ReasonTag          = "tag"
	ReasonBranchDelete = "branch deleted"
)

// ErrIgnored is matched (errors.Is) by every *IgnoredError.
var ErrIgnored = errors.New("webhook ignored")

// IgnoredError says a verified delivery asks for nothing to deploy: the
// forge is answered 2xx so that it does not retry.
type IgnoredError struct {
	// Reason is short and machine-friendly: one of the Reason constants.
	Reason string
	// Msg says it for a human.
	Msg string
}

func (e *IgnoredError) Error() string { return "ignored: " + e.Reason + ": " + e.Msg }

// Is makes errors.Is(err, ErrIgnored) true.
func (e *IgnoredError) Is(target error) bool { return target == ErrIgnored }

// BadRequestError says a delivery is malformed: its JSON does not parse, or
// a field the decision needs is missing or invalid. It never comes before
// the signature has been verified.
type BadRequestError struct {
	Msg string
}

func (e *BadRequestError) Error() string { return "bad webhook request: " + e.Msg }

func badRequest(format string, args ...any) error {
	return &BadRequestError{Msg: fmt.Sprintf(format, args...)}
}

func ignored(reason, format string, args ...any) error {
	return &IgnoredError{Reason: reason, Msg: fmt.Sprintf(format, args...)}
}

// Decide says whether ev asks to deploy branch of repo (repo "" means any
// repository; repository names compare case-insensitively, branch names
// exactly). It returns the newest change to branch (the last one when the
// push carries several), or an *IgnoredError whose Reason is one of the
// Reason constants. A change without a valid commit gives a
// *BadRequestError (Parse never produces one).
func Decide(ev *Event, branch, repo string) (Change, error) {
	switch {
	case ev == nil:
		return Change{}, badRequest("no event")
	case isPing(ev.Provider, ev.Kind):
		return Change{}, ignored(ReasonPing, "%s %s", ev.Provider, ev.Kind)
	case !isPush(ev.Provider, ev.Kind):
		return Change{}, ignored(ReasonNotPush, "%s event %s", ev.Provider, printable(ev.Kind))
	case repo != "" && !strings.EqualFold(ev.Repo, repo):
		return Change{}, ignored(ReasonOtherRepo, "push to repository %s, not %s", printable(ev.Repo), printable(repo))
	case len(ev.Changes) == 0:
		return Change{}, ignored(ReasonEmptyPush, "the push changed no ref")
	}
	found := -1
	for i, c := range ev.Changes {
		if !c.Tag && c.Branch == branch && branch != "" {
			found = i
		}
	}
	if found < 0 {
		return Change{}, notOurs(ev.Changes, branch)
	}
	c := ev.Changes[found]
	if c.Deleted {
		return Change{}, ignored(ReasonBranchDelete, "branch %s was deleted", printable(branch))
	}
	if !validCommit(c.Commit) {
		return Change{}, badRequest("change to %s has no valid commit", printable(c.Ref))
	}
	return c, nil
}

// notOurs explains why none of changes is to branch: they are all tags, or
// some other ref.
func notOurs(changes []Change, branch string) error {
	refs := make([]string, 0, len(changes))
	tags := true
	for _, c := range changes {
		refs = append(refs, printable(c.Ref))
		tags = tags && c.Tag
	}
	if len(refs) > 5 {
		refs = append(refs[:5], "…")
	}
	if tags {
		return ignored(ReasonTag, "the push changed tags only (%s)", strings.Join(refs, ", "))
	}
	return ignored(ReasonOtherBranch, "the push changed %s, not branch %s", strings.Join(refs, ", "), printable(branch))
}

// printable renders a payload or header string for a message: plain when it
// is short printable ASCII without spaces, quoted and cut at 64 bytes
// otherwise.
func printable(s string) string {
	const max = 64
	plain := len(s) > 0 && len(s) <= max
	for i := 0; plain && i < len(s); i++ {
		plain = s[i] > ' ' && s[i] < 0x7f && s[i] != '"'
	}
	if plain {
		return s
	}
	if len(s) > max {
		s = s[:max] + "…"
	}
	return fmt.Sprintf("%q", s)
}
