package config

import (
	"fmt"
	"strings"
)

// Error is a bad configuration: every problem found, one a line, each naming
// the variable (or file:line) at fault and what to do. main maps it to exit
// status 2.
type Error struct {
	Problems []string
}

func (e *Error) Error() string {
	return strings.Join(e.Problems, "\n")
}

// problems collects problems; err returns nil when there are none.
type problems []string

func (p *problems) add(format string, args ...any) {
	*p = append(*p, fmt.Sprintf(format, args...))
}

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return &Error{Problems: p}
}
