package cli

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Hosts, hooks and webhook headers send text that ends up on a terminal:
// a hook's output, a command's error, a forged header. Printed raw, an
// escape sequence in it could clear or overwrite lines, move the cursor or
// set the window's title, and a carriage return could put a fake line
// over a real one. visible and logValue show such characters as escapes
// instead; what is printable stays as it is.

// visible is s with every control character but tab (and, when newlines
// is set, newline) written as a Go escape (\x1b, \r, \u009b), as are
// bytes that are not UTF-8 and the format characters that reorder or hide
// text (U+202E, U+200B, …).
func visible(s string, newlines bool) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return hidden(r, newlines) }) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < 0x80 && hidden(r, newlines):
			fmt.Fprintf(&b, `\x%02x`, r)
		case hidden(r, newlines):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
		i += size
	}
	return b.String()
}

// hidden tells the runes visible escapes.
func hidden(r rune, newlines bool) bool {
	switch {
	case r == '\t', r == '\n' && newlines:
		return false
	case r == utf8.RuneError:
		return true
	}
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r)
}

// logValue is an attribute's value as the progress log prints it after
// key=: quoted (strconv.Quote) when it holds a space, '=', '"' or anything
// not printable, so that a value cannot pass for more fields.
func logValue(v string) string {
	if strings.ContainsFunc(v, func(r rune) bool {
		return r == ' ' || r == '=' || r == '"' || r == utf8.RuneError || !unicode.IsPrint(r)
	}) {
		return strconv.Quote(v)
	}
	return v
}
