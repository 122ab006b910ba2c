package simulator

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/acmecrm/acmecrm/internal/webhook"
)

// Every line Emit writes reads back, through ReadEmitted, as a request the
// receiver's verifier accepts and its parser reads; a line whose header
// field is not "Name: value" is an error.
func TestReadEmittedRoundTrip(t *testing.T) {
	t.Parallel()
	key, now := []byte("round-trip-secret"), time.Now()
	var out bytes.Buffer
	if err := Emit(&out, EmitOptions{Key: key, Events: 25, MaxUpdates: 2, DeleteRatio: 0.5, Now: now}); err != nil {
		t.Fatal(err)
	}
	v := &webhook.Verifier{Secrets: []webhook.Secret{{ID: "current", Key: key}}, MaxAge: time.Minute, Now: func() time.Time { return now }}
	p, err := webhook.NewParser(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for line := range strings.Lines(out.String()) {
		h, body, err := ReadEmitted(line)
		if err != nil {
			t.Fatal(err)
		}
		if h.Get("Content-Type") != "application/json" {
			t.Fatalf("content type %q", h.Get("Content-Type"))
		}
		if _, err := v.Verify(h, body); err != nil {
			t.Fatalf("line %d does not verify: %v\n%s", n, err, line)
		}
		if _, err := p.Parse(body, now); err != nil {
			t.Fatalf("line %d does not parse: %v", n, err)
		}
		n++
	}
	if n != 25 {
		t.Fatalf("%d lines, want 25", n)
	}
	if _, _, err := ReadEmitted("Content-Type application/json\t{}\n"); err == nil {
		t.Fatal("a header field without \": \" was read")
	}
}
