package acmecrm

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

func TestParseAddress(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want Address
	}{
		{"1 Main St, Springfield, IL 62701, USA", Address{"1 Main St", "Springfield", "IL", "62701", "USA"}},
		{"", Address{}},
		{"   ", Address{}},
		{"1 Main St", Address{Street: "1 Main St"}},
		{"1 Main St, Springfield", Address{Street: "1 Main St", City: "Springfield"}},
		{"1 Main St, Springfield, IL 62701", Address{"1 Main St", "Springfield", "IL", "62701", ""}},
		{"Apt 4, 1 Main St, Springfield, IL 62701, USA", Address{"Apt 4, 1 Main St", "Springfield", "IL", "62701", "USA"}},
		{"1 Main St, New York, New York 10001-1234, USA", Address{"1 Main St", "New York", "New York", "10001-1234", "USA"}},
		{"Marienplatz 1, Munich, Bavaria, Germany", Address{"Marienplatz 1", "Munich", "Bavaria", "", "Germany"}},
		{"1 Main St, Springfield, 62701, USA", Address{"1 Main St", "Springfield", "", "62701", "USA"}},
		{", Springfield, IL 62701, USA", Address{"", "Springfield", "IL", "62701", "USA"}},
		{"1 Main St, , , USA", Address{Street: "1 Main St", Country: "USA"}},
		{"  1   Main St ,Springfield,IL  62701,  USA ,", Address{"1 Main St", "Springfield", "IL", "62701", "USA"}},
		{"1 Main St, Springfield, IL 62701, USA,,", Address{"1 Main St", "Springfield", "IL", "62701", "USA"}},
	}
	for _, c := range cases {
		if got := ParseAddress(c.in); got != c.want {
			t.Errorf("ParseAddress(%q) = %+v, want %+v", c.in, got, c.want)
		}
	}
}

func TestFormatAddress(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   Address
		want string
	}{
		{Address{"1 Main St", "Springfield", "IL", "62701", "USA"}, "1 Main St, Springfield, IL 62701, USA"},
		{Address{}, ""},
		{Address{Street: "1 Main St"}, "1 Main St"},
		{Address{City: "Springfield", Country: "USA"}, ", Springfield, , USA"},
		{Address{ZipCode: "62701"}, ", , 62701"},
	}
	for _, c := range cases {
		if got := FormatAddress(c.in); got != c.want {
			t.Errorf("FormatAddress(%+v) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestAcmeMappingExample(t *testing.T) {
	t.Parallel()
	a := AcmeContact{
		ContactID: "1234", FirstName: "John", LastName: "Doe", Email: "john.doe@example.com",
		Phone: "555-123-4567", Company: "Acme Inc", Title: "Engineer",
		Address: "1 Main St, Springfield, IL 62701, USA", Status: "Active",
		Tags: []string{"vip"}, CustomFields: map[string]any{"tier": "gold"},
	}
	f := FromAcme(a)
	want := ContactFields{
		FirstName: "John", LastName: "Doe", Email: "john.doe@example.com", Phone: "555-123-4567",
		Company: "Acme Inc", Title: "Engineer",
		Address: Address{"1 Main St", "Springfield", "IL", "62701", "USA"},
		Status:  "active", Tags: []string{"vip"}, CustomFields: map[string]any{"tier": "gold"},
	}
	if !reflect.DeepEqual(f, want) {
		t.Fatalf("FromAcme = %+v\nwant %+v", f, want)
	}
	// Absent optional fields mean empty, status defaults to active.
	f = FromAcme(AcmeContact{ContactID: "1", FirstName: "A", LastName: "B", Email: "a@b.co"})
	if f.Status != "active" || f.Tags == nil || len(f.Tags) != 0 || f.CustomFields == nil || f.Address != (Address{}) {
		t.Errorf("defaults: %+v", f)
	}
	back := ToAcme("1234", want)
	if back.Status != "Active" || back.Address != a.Address || back.ContactID != "1234" {
		t.Errorf("ToAcme = %+v", back)
	}
}

// Property: for any valid contact whose address parts are "plain", mapping
// to AcmeCRM and back gives the same fields.
func TestAcmeMappingRoundTrip(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	words := []string{"Main", "St", "Oak", "Springfield", "New", "York", "Élan", "O'Brien", "Straße", "北京"}
	phrase := func(max int) string {
		n := r.IntN(max + 1)
		w := make([]string, n)
		for i := range w {
			w[i] = words[r.IntN(len(words))]
		}
		return strings.Join(w, " ")
	}
	statuses := []string{"active", "inactive", "lead"}
	for i := 0; i < 2000; i++ {
		zip := ""
		if r.IntN(2) == 0 {
			zip = []string{"62701", "10001-1234", "75008", "1"}[r.IntN(4)]
		}
		f := ContactFields{
			FirstName: "F" + phrase(2), LastName: "L" + phrase(2), Email: "x@example.com",
			Phone: phrase(1), Company: phrase(3), Title: phrase(2), Notes: phrase(5),
			Address: Address{Street: phrase(3), City: phrase(2), State: phrase(2), ZipCode: zip, Country: phrase(2)},
			Status:  statuses[r.IntN(3)], Tags: []string{}, CustomFields: map[string]any{},
		}
		if r.IntN(2) == 0 {
			f.Tags = []string{"vip", phrase(1) + "x"}
			f.CustomFields = map[string]any{"tier": "gold", "score": 3.5, "ok": true}
		}
		got := FromAcme(ToAcme("c1", f))
		if !reflect.DeepEqual(got, f) {
			t.Fatalf("round trip changed the contact:\n in  %+v\n out %+v\n via %q", f, got, FormatAddress(f.Address))
		}
	}
}

func FuzzParseAddress(f *testing.F) {
	f.Add("1 Main St, Springfield, IL 62701, USA")
	f.Add(",,,,")
	f.Add("a, b, c 1, d, e")
	f.Fuzz(func(t *testing.T, s string) {
		a := ParseAddress(s)
		// Parsing what we format is stable: format(parse(x)) is a fixed point.
		once := FormatAddress(a)
		if again := FormatAddress(ParseAddress(once)); again != once {
			t.Fatalf("not a fixed point: %q → %q → %q", s, once, again)
		}
	})
}
