package webhook

// GitHub push payload, reduced to what a deploy needs.
type ghPush struct {
	Ref        string        `json:"ref"`
	After      string        `json:"after"`
	Deleted    bool          `json:"deleted"`
	Repository *ghRepository `json:"repository"`
	Pusher     *struct {
		Name string `json:"name"`
	} `json:"pusher"`
	Sender *ghUser `json:"sender"`
}

type ghRepository struct {
	FullName string `json:"full_name"`
}

type ghUser struct {
	Login string `json:"login"`
}

// ghPing is the ping sent when a webhook is created. Organisation and app
// webhooks have no repository.
type ghPing struct {
	Repository *ghRepository `json:"repository"`
	Sender     *ghUser       `json:"sender"`
}

func parseGitHub(kind string, body []byte) (*Event, error) {
	switch kind {
	case "push":
	case "ping":
		var p ghPing
		if err := decode(body, &p); err != nil {
			return nil, err
		}
		ev := &Event{}
		if p.Repository != nil {
			ev.Repo = p.Repository.FullName
		}
		if p.Sender != nil {
			ev.Actor = p.Sender.Login
		}
		return ev, nil
	default:
		return nil, unknownEvent("X-GitHub-Event", kind)
	}
	var p ghPush
	if err := decode(body, &p); err != nil {
		return nil, err
	}
	if p.Repository == nil || p.Repository.FullName == "" {
		return nil, badRequest("repository.full_name missing")
	}
	c, err := newChange(p.Ref, "ref", p.After, "after", p.Deleted || isZeroHash(p.After))
	if err != nil {
		return nil, err
	}
	ev := &Event{Repo: p.Repository.FullName, Changes: []Change{c}}
	switch {
	case p.Pusher != nil && p.Pusher.Name != "":
		ev.Actor = p.Pusher.Name
	case p.Sender != nil:
		ev.Actor = p.Sender.Login
	}
	return ev, nil
}
