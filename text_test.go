package acmecrm

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestValidText(t *testing.T) {
	for s, want := range map[string]bool{
		"":             true,
		"Zoë 名前 🙂":     true,
		"a\x00b":       false,
		"\xff":         false,
		"ok\xc3":       false, // truncated sequence
		"'; DROP --":   true,
		"%00 is fine":  true,
		"\u0000":       false,
		"tab\tand\nnl": true,
	} {
		if got := ValidText(s); got != want {
			t.Errorf("ValidText(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestHasInvisible(t *testing.T) {
	for s, want := range map[string]bool{"ann@example.com": false, "Zoë-Ærø": false, "a b": true, "a\u00a0b": true,
		"a\u200bb": true, "a\x01": true, "a\u2028": true, "tab\t": true, "": false} {
		if got := HasInvisible(s); got != want {
			t.Errorf("HasInvisible(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestCheckJSONText(t *testing.T) {
	type problem struct{ path, message string }
	nul, member := "must not contain NUL characters", "must not have a member name with a NUL character"
	for name, tc := range map[string]struct {
		body string
		code string // "" = accepted
		want []problem
	}{
		"plain":                     {body: `{"a":"b","c":[1,true,null,{"d":"e"}]}`},
		"other escapes":             {body: `{"a":"line\nbreak \"quoted\" \/ \u00e9 \u0001"}`},
		"escaped backslash, then u": {body: `{"a":"\\u0000 is how you write it"}`},
		"NUL in a value":            {body: `{"a":"x\u0000"}`, code: "INVALID_INPUT", want: []problem{{"a", nul}}},
		"NUL after a backslash":     {body: `{"a":"\\\u0000"}`, code: "INVALID_INPUT", want: []problem{{"a", nul}}},
		"NUL deep in an array": {body: `{"data":{"acme_tags":["a","b\u0000"]}}`, code: "INVALID_INPUT",
			want: []problem{{"data.acme_tags.1", nul}}},
		"NUL in a member name": {body: `{"data":{"acme_custom_fields":{"k\u0000":"v"}}}`, code: "INVALID_INPUT",
			want: []problem{{"data.acme_custom_fields", member}}},
		"NUL at the top":         {body: `"\u0000"`, code: "INVALID_INPUT", want: []problem{{"(body)", nul}}},
		"NUL in a top-level key": {body: `{"\u0000":1}`, code: "INVALID_INPUT", want: []problem{{"(body)", member}}},
		"every NUL is listed": {body: `{"a":"\u0000","b":[{"c":1},"\u0000"],"d":{"e\u0000f":"\u0000"}}`, code: "INVALID_INPUT",
			want: []problem{{"a", nul}, {"b.1", nul}, {"d", member}, {"d.e\x00f", nul}}},
		"not UTF-8":                    {body: "{\"a\":\"caf\xe9\"}", code: "MALFORMED_JSON"},
		"truncated UTF-8":              {body: "{\"a\":\"\xe2\x82\"}", code: "MALFORMED_JSON"},
		"malformed, left to parser":    {body: `{"a":"\u0000",}`},
		"two values, left to parser":   {body: `"x" "\u0000"`},
		"unterminated, left to parser": {body: `{"a":"\u0000`},
	} {
		t.Run(name, func(t *testing.T) {
			err := CheckJSONText([]byte(tc.body))
			if tc.code == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Kind != KindInvalid || e.Code != tc.code {
				t.Fatalf("got %v, want a %s error", err, tc.code)
			}
			if tc.want == nil {
				return
			}
			var got []problem
			for _, fe := range e.Details.(map[string]any)["errors"].([]FieldError) {
				got = append(got, problem{fe.Path, fe.Message})
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("problems %q, want %q", got, tc.want)
			}
		})
	}
	// A hostile body with NULs everywhere, deep down, costs a bounded list.
	deep := strings.Repeat("[", 50000) + strings.Repeat(`"\u0000",`, 50000) + `0` + strings.Repeat("]", 50000)
	var e *Error
	if err := CheckJSONText([]byte(deep)); !errors.As(err, &e) || len(e.Details.(map[string]any)["errors"].([]FieldError)) != maxNULProblems {
		t.Fatalf("deep NULs: %v", err)
	}
	if err := CheckJSONText([]byte("{\"a\":\"ok\",\"b\":\"\xff\"}")); err == nil || !strings.Contains(err.Error(), "byte 15") {
		t.Fatalf("the invalid byte's offset is not reported: %v", err)
	}
}

// FuzzCheckJSONText: a well-formed body passes exactly when it is UTF-8 and
// none of its decoded strings or member names holds U+0000.
func FuzzCheckJSONText(f *testing.F) {
	for _, s := range []string{`{"a":"\u0000"}`, `{"a":"\\u0000"}`, `["\\\u0000"]`, `{"k\u0000":1}`,
		"\"\xff\"", `{"a":[1,{"b":"c"}]}`, `"\u00000"`, `{"a":"\u000"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		err := CheckJSONText(b)
		var v any
		if json.Unmarshal(b, &v) != nil {
			return // malformed: whatever CheckJSONText says, the parser refuses it
		}
		want := utf8.Valid(b) && !holdsNUL(v)
		if (err == nil) != want {
			t.Fatalf("CheckJSONText(%q) = %v, want accepted=%v", b, err, want)
		}
	})
}

func holdsNUL(v any) bool {
	switch x := v.(type) {
	case string:
		return strings.IndexByte(x, 0) >= 0
	case []any:
		for _, e := range x {
			if holdsNUL(e) {
				return true
			}
		}
	case map[string]any:
		for k, e := range x {
			if strings.IndexByte(k, 0) >= 0 || holdsNUL(e) {
				return true
			}
		}
	}
	return false
}
