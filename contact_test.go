package acmecrm

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func validFields() ContactFields {
	f := ContactFields{FirstName: "John", LastName: "Doe", Email: "john@example.com"}
	f.Normalize()
	return f
}

func problemPaths(t *testing.T, f ContactFields, allowDeleted bool) []string {
	t.Helper()
	var p Problems
	f.Validate(&p, "", allowDeleted)
	var paths []string
	for _, e := range p {
		paths = append(paths, e.Path)
	}
	return paths
}

func TestContactValidationReportsEveryProblem(t *testing.T) {
	t.Parallel()
	f := ContactFields{
		FirstName: "", LastName: strings.Repeat("x", 101), Email: "not-an-email",
		Phone: strings.Repeat("1", 51), Notes: strings.Repeat("n", 2001), Status: "zombie",
		Address:      Address{ZipCode: strings.Repeat("9", 21)},
		Tags:         []string{"ok", strings.Repeat("t", 51), ""},
		CustomFields: map[string]any{"nested": map[string]any{"a": 1}, "list": []any{1}, "huge": json.Number("1e400"), "tiny": json.Number("-2e308")},
	}
	got := strings.Join(problemPaths(t, f, false), " ")
	for _, want := range []string{"firstName", "lastName", "email", "phone", "notes", "status", "address.zipCode", "tags[1]", "tags[2]",
		"customFields.nested", "customFields.list", "customFields.huge", "customFields.tiny"} {
		if !strings.Contains(" "+got+" ", " "+want+" ") {
			t.Errorf("no problem for %s in %q", want, got)
		}
	}
}

func TestContactValidationAcceptsLimits(t *testing.T) {
	t.Parallel()
	f := validFields()
	f.FirstName = strings.Repeat("é", 100) // characters, not bytes
	f.Notes = strings.Repeat("n", 2000)
	f.Tags = []string{strings.Repeat("t", 50)}
	f.CustomFields = map[string]any{"s": "x", "n": 1.5, "b": false,
		"id": json.Number("12345678901234567890"), "max": json.Number("1.7976931348623157e308"), "small": json.Number("1e-400")}
	if paths := problemPaths(t, f, false); len(paths) != 0 {
		t.Fatalf("unexpected problems: %v", paths)
	}
	f.Status = StatusDeleted
	if paths := problemPaths(t, f, false); len(paths) != 1 || paths[0] != "status" {
		t.Errorf("status deleted via the API: %v", paths)
	}
	if paths := problemPaths(t, f, true); len(paths) != 0 {
		t.Errorf("status deleted from the CRM: %v", paths)
	}
}

func TestValidEmail(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"a@b.co", "john.doe+tag@example.com", "x@sub.example.org", "zoë@exämple.de"} {
		if !ValidEmail(ok) {
			t.Errorf("ValidEmail(%q) = false", ok)
		}
	}
	for _, bad := range []string{"", "a", "a@b", "John <a@b.co>", "a@b.co ", "a b@c.de", "@b.co", "a@.co", "a@co.", strings.Repeat("a", 250) + "@b.com", "a@b.co\n",
		"a@b.c\u2028d", "a\u00a0b@c.de", "a@b.co\u200b", "a\x7f@b.co", "a@b.co\u0085"} {
		if ValidEmail(bad) {
			t.Errorf("ValidEmail(%q) = true", bad)
		}
	}
}

func TestProblemsError(t *testing.T) {
	t.Parallel()
	var p Problems
	if p.Err("x") != nil {
		t.Fatal("no problems must be no error")
	}
	p.Add("a", "bad %d", 1)
	err := p.Err("invalid")
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindInvalid || e.Code != "INVALID_INPUT" {
		t.Fatalf("err = %#v", err)
	}
}
