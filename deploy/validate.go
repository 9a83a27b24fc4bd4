package deploy

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// These checks guard every value that comes from outside (configuration,
// command line, webhook payloads) before it can become part of a remote
// command. Quote makes any string safe for the shell; these make sure the
// value also means what it claims (a branch git accepts, a hash, a path that
// stays where it should).

var (
	fullCommitRE  = regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64})$`)
	commitRE      = regexp.MustCompile(`^[0-9a-fA-F]{4,64}$`)
	releaseNameRE = regexp.MustCompile(`^[0-9]{14}-[0-9a-f]{7}$`)
)

// ValidBranch reports whether git would accept name as a branch name, with
// the rules of git check-ref-format --branch.
func ValidBranch(name string) error {
	switch {
	case name == "":
		return errors.New("branch name is empty")
	case name == "@" || name == "HEAD":
		return fmt.Errorf("%q is not a branch name", name)
	case strings.HasPrefix(name, "-"):
		return fmt.Errorf("branch name %q starts with '-'", name)
	case strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/"):
		return fmt.Errorf("branch name %q starts or ends with '/'", name)
	case strings.HasSuffix(name, "."):
		return fmt.Errorf("branch name %q ends with '.'", name)
	case strings.Contains(name, ".."):
		return fmt.Errorf("branch name %q contains '..'", name)
	case strings.Contains(name, "//"):
		return fmt.Errorf("branch name %q contains '//'", name)
	case strings.Contains(name, "@{"):
		return fmt.Errorf("branch name %q contains '@{'", name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("branch name %q contains a control character", name)
		}
		if strings.ContainsRune(" ~^:?*[\\", r) {
			return fmt.Errorf("branch name %q contains %q, which git refuses", name, r)
		}
		if r < 0x80 && !isBranchRune(r) {
			// git would take it; the release branch gets no shell
			// metacharacters all the same (quoting makes them safe, a
			// plain name makes them impossible).
			return fmt.Errorf("branch name %q contains %q; the release branch may have letters, digits and - _ . / + @", name, r)
		}
	}
	for _, part := range strings.Split(name, "/") {
		if strings.HasPrefix(part, ".") {
			return fmt.Errorf("branch name %q has a part starting with '.'", name)
		}
		if strings.HasSuffix(part, ".lock") {
			return fmt.Errorf("branch name %q has a part ending with '.lock'", name)
		}
	}
	return nil
}

// ValidCommit reports whether s is a full commit hash (40 or 64 lower-case
// hex digits).
func ValidCommit(s string) error {
	if !fullCommitRE.MatchString(s) {
		return fmt.Errorf("%q is not a full commit hash (40 hex digits)", s)
	}
	return nil
}

// ValidCommitPrefix reports whether s can name a commit: 4 to 64 hex digits.
func ValidCommitPrefix(s string) error {
	if !commitRE.MatchString(s) {
		return fmt.Errorf("%q is not a commit hash (4 to 40 hex digits)", s)
	}
	return nil
}

// ValidReleaseName reports whether s is a release folder name made by
// ReleaseName. Nothing else under releases/ is ever touched.
func ValidReleaseName(s string) error {
	if !releaseNameRE.MatchString(s) {
		return fmt.Errorf("%q is not a release name (YYYYMMDDHHMMSS-abcdef0)", s)
	}
	return nil
}

// ValidPath reports whether p can be used as a path on the hosts: not empty,
// no control characters, no ".." part (so it cannot climb out of where it is
// meant to be).
func ValidPath(p string) error {
	if p == "" {
		return errors.New("path is empty")
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("path %q contains a control character", p)
		}
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return fmt.Errorf("path %q contains '..'", p)
		}
	}
	return nil
}

// isBranchRune tells the ASCII characters a release branch name may have.
func isBranchRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./+@", r)
}

// MaxDeliveryID is the longest webhook delivery id the worker remembers:
// the forges send UUIDs and GUIDs (36 characters, 38 with braces).
const MaxDeliveryID = 64

// ValidDeliveryID checks a webhook's delivery id before it is remembered:
// at most MaxDeliveryID printable ASCII characters, no space. The error
// does not repeat the id (it comes from an unverified header).
func ValidDeliveryID(id string) error {
	if len(id) > MaxDeliveryID {
		return fmt.Errorf("delivery id of %d bytes: at most %d", len(id), MaxDeliveryID)
	}
	if strings.ContainsFunc(id, func(r rune) bool { return r <= ' ' || r > '~' }) {
		return errors.New("delivery id has a character other than printable ASCII")
	}
	return nil
}
