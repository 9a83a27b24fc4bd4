package webhook

// GitLab Push Hook and Tag Push Hook payload, reduced.
type glPush struct {
	Ref string `json:"ref"`
	// After is the ref's new value: all zeros when it was deleted.
	After string `json:"after"`
	// CheckoutSHA is the commit to check out (for an annotated tag, the
	// commit rather than the tag object); null when the ref was deleted.
	CheckoutSHA  *string `json:"checkout_sha"`
	UserName     string  `json:"user_name"`
	UserUsername string  `json:"user_username"`
	Project      *struct {
		PathWithNamespace string `json:"path_with_namespace"`
	} `json:"project"`
}

func parseGitLab(kind string, body []byte) (*Event, error) {
	if kind != "Push Hook" && kind != "Tag Push Hook" {
		return nil, unknownEvent("X-Gitlab-Event", kind)
	}
	var p glPush
	if err := decode(body, &p); err != nil {
		return nil, err
	}
	if p.Project == nil || p.Project.PathWithNamespace == "" {
		return nil, badRequest("project.path_with_namespace missing")
	}
	if p.After == "" {
		return nil, badRequest("after missing")
	}
	deleted := isZeroHash(p.After)
	commit, field := p.After, "after"
	if p.CheckoutSHA != nil && *p.CheckoutSHA != "" && !deleted {
		commit, field = *p.CheckoutSHA, "checkout_sha"
	}
	c, err := newChange(p.Ref, "ref", commit, field, deleted)
	if err != nil {
		return nil, err
	}
	if kind == "Tag Push Hook" {
		// Whatever the ref says, a tag push never counts as a branch.
		c.Tag, c.Branch = true, ""
	}
	return &Event{
		Repo:    p.Project.PathWithNamespace,
		Actor:   firstNonEmpty(p.UserName, p.UserUsername),
		Changes: []Change{c},
	}, nil
}
