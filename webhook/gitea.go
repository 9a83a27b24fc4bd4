package webhook

// Gitea / Forgejo push payload, reduced.
type giteaPush struct {
	Ref        string `json:"ref"`
	After      string `json:"after"`
	Repository *struct {
		FullName string `json:"full_name"`
	} `json:"repository"`
	Pusher *giteaUser `json:"pusher"`
	Sender *giteaUser `json:"sender"`
}

type giteaUser struct {
	Login    string `json:"login"`
	Username string `json:"username"`
	FullName string `json:"full_name"`
}

func (u *giteaUser) name() string {
	if u == nil {
		return ""
	}
	return firstNonEmpty(u.FullName, u.Login, u.Username)
}

// parseGitea parses a push. Gitea announces a deleted branch with a
// separate "delete" event, which is ignored like any other event; a push
// whose after is all zeros counts as a deletion too.
func parseGitea(kind string, body []byte) (*Event, error) {
	if kind != "push" {
		return nil, unknownEvent("X-Gitea-Event", kind)
	}
	var p giteaPush
	if err := decode(body, &p); err != nil {
		return nil, err
	}
	if p.Repository == nil || p.Repository.FullName == "" {
		return nil, badRequest("repository.full_name missing")
	}
	c, err := newChange(p.Ref, "ref", p.After, "after", isZeroHash(p.After))
	if err != nil {
		return nil, err
	}
	return &Event{
		Repo:    p.Repository.FullName,
		Actor:   firstNonEmpty(p.Pusher.name(), p.Sender.name()),
		Changes: []Change{c},
	}, nil
}
