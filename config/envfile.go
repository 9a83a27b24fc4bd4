package config

import (
	"bytes"
	"fmt"
	"strings"
)

// envEntry is one VARIABLE=value statement of an env file.
type envEntry struct {
	key, value string
	line       int // the line the statement starts on, from 1
}

// envSyntaxError is the first statement of an env file that cannot be
// read. It names the line only: the file may hold secrets, so nothing of
// it is quoted.
type envSyntaxError struct {
	line         int
	unterminated bool // a quote opened on line is never closed
}

func (e *envSyntaxError) problem(file string) string {
	if e.unterminated {
		return fmt.Sprintf("%s:%d: unterminated quoted value: the quote opened on this line is never closed", file, e.line)
	}
	return fmt.Sprintf("%s:%d: not a VARIABLE=value line (variable names are letters, digits and _; quote values with spaces or #)", file, e.line)
}

// parseEnvFile reads an env file literally: a value is what is written,
// and nothing in it is expanded, so "$HOME", "${X}" and "$(cmd)" stay as
// they are, as systemd's EnvironmentFile= keeps them. The syntax is
// dotenv's, as docs/configuration.md describes it:
//
//   - blank lines and lines starting with # are skipped;
//   - a statement is NAME=value, optionally preceded by "export ", with
//     blanks allowed around the =; NAME is letters, digits, _ and .;
//   - 'single-quoted' values are taken verbatim up to the next ';
//   - "double-quoted" values end at the next " that no backslash escapes;
//     inside, \n is a newline, \r a carriage return, and a backslash
//     before any other character stands for that character;
//   - quoted values may span lines; after the closing quote only blanks
//     and a # comment may follow on the line;
//   - unquoted values run to the end of the line, where the first # after
//     a blank starts a comment; blanks around them are dropped; \$ stands
//     for $, and other backslashes and quotes are kept as written.
//
// A key set twice keeps its last value; the entries are in file order.
func parseEnvFile(data []byte) ([]envEntry, *envSyntaxError) {
	p := envParser{src: bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n")), line: 1}
	var entries []envEntry
	for {
		p.skipBlankLines()
		if p.eof() {
			return entries, nil
		}
		e, err := p.statement()
		if err != nil {
			return entries, err
		}
		entries = append(entries, e)
	}
}

// envParser is the state of one parseEnvFile.
type envParser struct {
	src  []byte
	pos  int
	line int // the line of src[pos]
}

func (p *envParser) eof() bool { return p.pos >= len(p.src) }

func (p *envParser) peek() byte { return p.src[p.pos] }

// next consumes one byte, counting lines.
func (p *envParser) next() byte {
	c := p.src[p.pos]
	p.pos++
	if isLineEnd(c) {
		p.line++
	}
	return c
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' || c == '\v' || c == '\f' }

// isLineEnd: a line ends at a newline, or at a carriage return that is not
// part of a CRLF (which parseEnvFile reads as a newline).
func isLineEnd(c byte) bool { return c == '\n' || c == '\r' }

func isNameByte(c byte) bool {
	return c == '_' || c == '.' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// skipBlanks skips blanks within the line.
func (p *envParser) skipBlanks() {
	for !p.eof() && isBlank(p.peek()) {
		p.pos++
	}
}

// skipLine skips the rest of the line and its newline.
func (p *envParser) skipLine() {
	for !p.eof() && !isLineEnd(p.next()) {
	}
}

// skipBlankLines skips blank lines and comment lines.
func (p *envParser) skipBlankLines() {
	for !p.eof() {
		switch c := p.peek(); {
		case isLineEnd(c):
			p.next()
		case isBlank(c):
			p.pos++
		case c == '#':
			p.skipLine()
		default:
			return
		}
	}
}

// statement reads NAME=value and the rest of its (last) line.
func (p *envParser) statement() (envEntry, *envSyntaxError) {
	e := envEntry{line: p.line}
	bad := &envSyntaxError{line: p.line}
	if rest := p.src[p.pos:]; bytes.HasPrefix(rest, []byte("export")) && len(rest) > 6 && isBlank(rest[6]) {
		p.pos += 6
		p.skipBlanks()
	}
	start := p.pos
	for !p.eof() && isNameByte(p.peek()) {
		p.pos++
	}
	e.key = string(p.src[start:p.pos])
	p.skipBlanks()
	if e.key == "" || p.eof() || p.peek() != '=' {
		return e, bad
	}
	p.pos++
	p.skipBlanks()
	if p.eof() {
		return e, nil
	}
	switch p.peek() {
	case '\'', '"':
		var ok bool
		if e.value, ok = p.quoted(); !ok {
			bad.unterminated = true
			return e, bad
		}
		p.skipBlanks()
		switch {
		case p.eof():
		case isLineEnd(p.peek()):
			p.next()
		case p.peek() == '#':
			p.skipLine()
		default:
			return e, &envSyntaxError{line: p.line}
		}
	default:
		e.value = p.unquoted()
	}
	return e, nil
}

// quoted reads a quoted value, the opening quote first; ok is false when
// the quote is never closed.
func (p *envParser) quoted() (value string, ok bool) {
	quote := p.next()
	var b []byte
	for !p.eof() {
		c := p.next()
		switch {
		case c == quote:
			return string(b), true
		case c == '\\' && quote == '"' && !p.eof():
			switch e := p.next(); e {
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			default:
				b = append(b, e)
			}
		default:
			b = append(b, c)
		}
	}
	return "", false
}

// unquoted reads the rest of the line as a value: up to a # that follows
// a blank, without the blanks around it. \$ is read as $: the one escape
// of unquoted values, which the dotenv reader of earlier versions and
// systemd both read so.
func (p *envParser) unquoted() string {
	start, end := p.pos, -1
	for !p.eof() && !isLineEnd(p.peek()) {
		if p.peek() == '#' && end < 0 && p.pos > start && isBlank(p.src[p.pos-1]) {
			end = p.pos
		}
		p.pos++
	}
	if end < 0 {
		end = p.pos
	}
	if !p.eof() {
		p.next()
	}
	v := string(bytes.TrimRight(p.src[start:end], " \t\v\f"))
	return strings.ReplaceAll(v, `\$`, "$")
}
