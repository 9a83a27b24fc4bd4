package config

import (
	"fmt"
	"net/url"
	"strings"
)

// BitbucketRepo returns the workspace and repository slug of the Bitbucket
// Cloud repository whose commits get build statuses: DEPLOY_WEBHOOK_REPO
// (workspace/repo) when set, else the path of a bitbucket.org
// DEPLOY_REPO_URL (git@bitbucket.org:team/app.git,
// ssh://git@bitbucket.org/team/app.git, https://bitbucket.org/team/app.git).
// ok is false when neither names one.
func (c *Config) BitbucketRepo() (workspace, slug string, ok bool) {
	if c.WebhookRepo != "" {
		return splitRepo(c.WebhookRepo)
	}
	return bitbucketPath(c.RepoURL)
}

// bitbucketPath is the workspace/slug of a bitbucket.org repository URL.
func bitbucketPath(repoURL string) (workspace, slug string, ok bool) {
	var host, path string
	if u, err := url.Parse(repoURL); err == nil && u.Scheme != "" && u.Host != "" {
		host, path = u.Hostname(), u.Path
	} else if at, rest, found := strings.Cut(repoURL, "@"); found && !strings.Contains(at, "/") {
		// scp-like: git@bitbucket.org:team/app.git
		host, path, found = strings.Cut(rest, ":")
		if !found {
			return "", "", false
		}
	} else {
		return "", "", false
	}
	if !strings.EqualFold(host, "bitbucket.org") {
		return "", "", false
	}
	path = strings.TrimSuffix(strings.Trim(path, "/"), ".git")
	return splitRepo(path)
}

// splitRepo splits "workspace/slug".
func splitRepo(full string) (workspace, slug string, ok bool) {
	workspace, slug, found := strings.Cut(full, "/")
	if !found || workspace == "" || slug == "" || strings.Contains(slug, "/") {
		return "", "", false
	}
	return workspace, slug, true
}

// bitbucket checks that build statuses know their repository.
func (v *validator) bitbucket() {
	if v.c.BitbucketToken == "" || !v.on("DEPLOY_BITBUCKET_TOKEN") {
		return
	}
	if _, _, ok := v.c.BitbucketRepo(); !ok {
		what := "DEPLOY_REPO_URL is not a bitbucket.org repository URL and DEPLOY_WEBHOOK_REPO is not set"
		if v.c.WebhookRepo != "" {
			what = fmt.Sprintf("DEPLOY_WEBHOOK_REPO %q is not workspace/repo", v.c.WebhookRepo)
		}
		v.add("DEPLOY_BITBUCKET_TOKEN is set, but the repository to set build statuses on is unknown: %s; set DEPLOY_WEBHOOK_REPO to the Bitbucket workspace/repo (e.g. team/app)", what)
	}
}
