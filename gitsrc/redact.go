package gitsrc

import (
	"net/url"
	"slices"
	"strings"
)

// redactor blanks out the password of a URL's userinfo
// (https://user:password@host/…) wherever it shows up in a text.
type redactor struct {
	r *strings.Replacer // nil when the URL has no password
}

func newRedactor(rawURL string) redactor {
	i := strings.Index(rawURL, "://")
	if i < 0 {
		return redactor{}
	}
	authority := rawURL[i+3:]
	if end := strings.IndexAny(authority, "/?#"); end >= 0 {
		authority = authority[:end]
	}
	at := strings.LastIndexByte(authority, '@')
	if at < 0 {
		return redactor{}
	}
	_, pass, ok := strings.Cut(authority[:at], ":")
	if !ok || pass == "" {
		return redactor{}
	}
	// The password as written, decoded, and encoded again the way
	// net/url (and so go-git's Endpoint.String) writes it.
	forms := []string{pass}
	if dec, err := url.PathUnescape(pass); err == nil {
		forms = append(forms, dec, strings.TrimPrefix(url.UserPassword("", dec).String(), ":"))
	}
	// Longest first, so no form is cut short by another it starts with.
	slices.SortFunc(forms, func(a, b string) int { return len(b) - len(a) })
	var pairs []string
	for _, f := range forms {
		if f != "" {
			pairs = append(pairs, f, "xxxxx")
		}
	}
	return redactor{r: strings.NewReplacer(pairs...)}
}

// String returns s with the password blanked out.
func (r redactor) String(s string) string {
	if r.r == nil {
		return s
	}
	return r.r.Replace(s)
}

// wrap returns err with the password blanked out of its message; errors.Is
// and errors.As still see the original.
func (r redactor) wrap(err error) error {
	if r.r == nil || err == nil {
		return err
	}
	return &redactedError{msg: r.String(err.Error()), err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
