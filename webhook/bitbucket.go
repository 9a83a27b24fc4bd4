package webhook

import (
	"fmt"
	"strings"
)

// Bitbucket Cloud repo:push payload, reduced to what a deploy needs.
type bbCloudPush struct {
	Actor *struct {
		DisplayName string `json:"display_name"`
		Nickname    string `json:"nickname"`
	} `json:"actor"`
	Repository *struct {
		FullName string `json:"full_name"`
	} `json:"repository"`
	Push *struct {
		Changes *[]bbCloudChange `json:"changes"`
	} `json:"push"`
}

type bbCloudChange struct {
	New *bbCloudRef `json:"new"` // null: the ref was deleted
	Old *bbCloudRef `json:"old"` // null: the ref was created
}

type bbCloudRef struct {
	Type   string `json:"type"` // "branch", "tag" or "annotated_tag"
	Name   string `json:"name"`
	Target *struct {
		Hash string `json:"hash"`
	} `json:"target"`
}

// fullRef turns a Bitbucket Cloud ref (type and short name) into a full ref
// name. Types other than branches and tags keep their bare name.
func (r *bbCloudRef) fullRef() string {
	switch r.Type {
	case "branch":
		return "refs/heads/" + r.Name
	case "tag", "annotated_tag":
		return "refs/tags/" + r.Name
	}
	return r.Name
}

func parseBitbucketCloud(kind string, body []byte) (*Event, error) {
	if kind != "repo:push" {
		return nil, unknownEvent("X-Event-Key", kind)
	}
	var p bbCloudPush
	if err := decode(body, &p); err != nil {
		return nil, err
	}
	if p.Repository == nil || p.Repository.FullName == "" {
		return nil, badRequest("repository.full_name missing")
	}
	if p.Push == nil || p.Push.Changes == nil {
		return nil, badRequest("push.changes missing")
	}
	ev := &Event{Repo: p.Repository.FullName}
	if p.Actor != nil {
		ev.Actor = firstNonEmpty(p.Actor.DisplayName, p.Actor.Nickname)
	}
	for i, ch := range *p.Push.Changes {
		at := fmt.Sprintf("push.changes[%d]", i)
		ref, deleted := ch.New, false
		if ref == nil {
			ref, deleted = ch.Old, true
		}
		if ref == nil {
			return nil, badRequest("%s: both new and old are null", at)
		}
		side := at + ".new"
		if deleted {
			side = at + ".old"
		}
		if ref.Name == "" {
			return nil, badRequest("%s.name missing", side)
		}
		var hash string
		if ref.Target != nil {
			hash = ref.Target.Hash
		}
		c, err := newChange(ref.fullRef(), side+".name", hash, side+".target.hash", deleted)
		if err != nil {
			return nil, err
		}
		if ref.Type != "branch" {
			c.Branch = "" // a name that only looks like refs/heads/…
		}
		ev.Changes = append(ev.Changes, c)
	}
	return ev, nil
}

// Bitbucket Server / Data Center repo:refs_changed payload, reduced.
type bbServerPush struct {
	Actor *struct {
		Name        string `json:"name"`
		DisplayName string `json:"displayName"`
	} `json:"actor"`
	Repository *struct {
		Slug    string `json:"slug"`
		Project *struct {
			Key string `json:"key"`
		} `json:"project"`
	} `json:"repository"`
	Changes *[]bbServerChange `json:"changes"`
}

type bbServerChange struct {
	Ref *struct {
		ID        string `json:"id"` // "refs/heads/release"
		DisplayID string `json:"displayId"`
		Type      string `json:"type"` // "BRANCH" or "TAG"
	} `json:"ref"`
	RefID  string `json:"refId"`
	ToHash string `json:"toHash"`
	Type   string `json:"type"` // "ADD", "UPDATE" or "DELETE"
}

func parseBitbucketServer(kind string, body []byte) (*Event, error) {
	switch kind {
	case "repo:refs_changed":
	case "diagnostics:ping":
		// "Test connection" ({"test": true}); its body carries nothing we
		// need, so whatever it is cannot fail the test.
		return &Event{}, nil
	default:
		return nil, unknownEvent("X-Event-Key", kind)
	}
	var p bbServerPush
	if err := decode(body, &p); err != nil {
		return nil, err
	}
	r := p.Repository
	switch {
	case r == nil || r.Slug == "":
		return nil, badRequest("repository.slug missing")
	case r.Project == nil || r.Project.Key == "":
		return nil, badRequest("repository.project.key missing")
	case p.Changes == nil:
		return nil, badRequest("changes missing")
	}
	ev := &Event{Repo: r.Project.Key + "/" + r.Slug}
	if p.Actor != nil {
		ev.Actor = firstNonEmpty(p.Actor.DisplayName, p.Actor.Name)
	}
	for i, ch := range *p.Changes {
		c, err := bbServerChangeOf(fmt.Sprintf("changes[%d]", i), ch)
		if err != nil {
			return nil, err
		}
		ev.Changes = append(ev.Changes, c)
	}
	return ev, nil
}

func bbServerChangeOf(at string, ch bbServerChange) (Change, error) {
	var deleted bool
	switch strings.ToUpper(ch.Type) {
	case "ADD", "UPDATE":
		deleted = isZeroHash(ch.ToHash)
	case "DELETE":
		deleted = true
	case "":
		return Change{}, badRequest("%s.type missing", at)
	default:
		return Change{}, badRequest("%s.type %s is not ADD, UPDATE or DELETE", at, printable(ch.Type))
	}
	ref, refField := ch.RefID, at+".refId"
	var tag bool
	if ch.Ref != nil {
		tag = strings.EqualFold(ch.Ref.Type, "TAG")
		if ch.Ref.ID != "" {
			ref, refField = ch.Ref.ID, at+".ref.id"
		}
	}
	c, err := newChange(ref, refField, ch.ToHash, at+".toHash", deleted)
	if err != nil {
		return Change{}, err
	}
	if tag {
		// A ref the payload calls a tag never counts as a branch.
		c.Tag, c.Branch = true, ""
	}
	return c, nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
