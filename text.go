package acmecrm

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ValidText reports whether s is text the service can store and compare:
// UTF-8 without U+0000. PostgreSQL's text and jsonb refuse both invalid
// byte sequences and NUL, so text that is neither must be refused at the
// door (400) and never reach a query, where it would fail as a 500.
func ValidText(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// HasInvisible reports whether s holds white space of any kind (U+00A0,
// U+2028 …), a control character, or anything else not printable: what an
// address or a user name must not contain, lest two look the same.
func HasInvisible(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsGraphic(r) }) >= 0
}

// CheckJSONText refuses a JSON body whose text the service could not store
// as it was sent: bytes that are not UTF-8 (RFC 8259 requires it, and Go's
// decoder would quietly turn them into U+FFFD) are MALFORMED_JSON; a string
// or member name holding U+0000 (written \u0000) is INVALID_INPUT with the
// path of every such value. A body that is not well-formed JSON otherwise is
// left to the caller's parser to report.
func CheckJSONText(b []byte) error {
	if !utf8.Valid(b) {
		return Errorf(KindInvalid, "MALFORMED_JSON", "malformed JSON: the body is not valid UTF-8 (byte %d)", invalidUTF8At(b))
	}
	if !hasNULEscape(b) {
		return nil
	}
	return nulProblems(b).Err("the body has text with a NUL character")
}

func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1
}

// hasNULEscape reports whether b may hold a \u0000 escape. In JSON a
// backslash only ever starts an escape inside a string, so skipping each
// escape whole is exact for well-formed bodies (and harmless for others:
// nulProblems then decides). Bodies without a backslash cost one IndexByte.
func hasNULEscape(b []byte) bool {
	for {
		i := bytes.IndexByte(b, '\\')
		if i < 0 || i+1 >= len(b) {
			return false
		}
		if b[i+1] != 'u' {
			b = b[i+2:]
			continue
		}
		if i+6 <= len(b) && string(b[i+2:i+6]) == "0000" {
			return true
		}
		b = b[i+2:]
	}
}

// maxNULProblems bounds the list: each path costs its depth to build, and a
// hostile body could hold many NULs deep down.
const maxNULProblems = 20

// nulProblems walks b's tokens and lists the strings and member names
// holding U+0000 (the first maxNULProblems), by path ("data.acme_tags.0";
// "(body)" for the top). It only runs when hasNULEscape found one; a body
// that turns out malformed yields no problems, so that its parser reports
// the syntax instead.
func nulProblems(b []byte) Problems {
	type frame struct {
		object    bool
		key       string
		index     int
		expectKey bool
	}
	var stack []frame
	path := func(withLast bool) string {
		parts := make([]string, 0, len(stack))
		for i, f := range stack {
			if i == len(stack)-1 && !withLast {
				break
			}
			if f.object {
				parts = append(parts, f.key)
			} else {
				parts = append(parts, strconv.Itoa(f.index))
			}
		}
		if len(parts) == 0 {
			return "(body)"
		}
		return strings.Join(parts, ".")
	}
	valueDone := func() {
		if n := len(stack); n > 0 {
			if stack[n-1].object {
				stack[n-1].expectKey = true
			} else {
				stack[n-1].index++
			}
		}
	}
	var p Problems
	values := 0 // top-level values begun: a second one is malformed
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) || len(p) >= maxNULProblems {
			return p
		}
		if err != nil {
			return nil
		}
		if len(stack) == 0 {
			if values++; values > 1 {
				return nil
			}
		}
		if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].expectKey {
			if key, ok := tok.(string); ok {
				if strings.IndexByte(key, 0) >= 0 {
					p.Add(path(false), "must not have a member name with a NUL character")
				}
				stack[n-1].key, stack[n-1].expectKey = key, false
				continue
			}
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				stack = append(stack, frame{object: true, expectKey: true})
			case '[':
				stack = append(stack, frame{})
			default:
				stack = stack[:len(stack)-1]
				valueDone()
			}
		case string:
			if strings.IndexByte(t, 0) >= 0 {
				p.Add(path(true), "must not contain NUL characters")
			}
			valueDone()
		default:
			valueDone()
		}
	}
}
