package config

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/joho/godotenv"
)

// envStatements reads data statement by statement, as godotenv does, and
// returns the line each key is set on (the last time), or the line of the
// first statement godotenv refuses (0 when there is none) and whether it
// is a quoted value never closed. godotenv's own messages name no line,
// and they quote the rest of the file, which may hold a secret.
func envStatements(data []byte) (keyLines map[string]int, badLine int, unterminated bool) {
	keyLines = make(map[string]int)
	lines := bytes.SplitAfter(data, []byte("\n"))
	start := 0 // the first line of the statement being read
	for end := 0; end < len(lines); end++ {
		m, err := godotenv.UnmarshalBytes(bytes.Join(lines[start:end+1], nil))
		switch {
		case err == nil:
			for k := range m {
				if k == "" {
					// "0" alone: godotenv takes it for a value without a name.
					return keyLines, end + 1, false
				}
				keyLines[k] = start + 1
			}
			start = end + 1
		case strings.HasPrefix(err.Error(), "unterminated quoted value"):
			// A quoted value may go on over the next lines.
		default:
			return keyLines, end + 1, false
		}
	}
	if start < len(lines) {
		return keyLines, start + 1, true
	}
	return keyLines, 0, false
}

// envFileProblem says where and why an env file cannot be read as
// VARIABLE=value lines, quoting nothing from it; "" when it can.
func envFileProblem(file string, data []byte) string {
	_, bad, unterminated := envStatements(data)
	switch {
	case bad == 0:
		return ""
	case unterminated:
		return fmt.Sprintf("%s:%d: unterminated quoted value: the quote opened on this line is never closed", file, bad)
	}
	return fmt.Sprintf("%s:%d: not a VARIABLE=value line (variable names are letters, digits and _; quote values with spaces or #)", file, bad)
}
