// Command signgen pre-signs webhook requests for the wrk benchmark: wrk's
// Lua has no HMAC, so every request's signature is computed here, at one
// timestamp, and the Lua script only assembles bodies and headers.
//
// Output: line 1 the X-Acme-Timestamp, lines 2–4 the three constant parts
// of the body, then one line per request: "<signature> <event id> <contact id>".
package main

import (
	"bufio"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/acmecrm/acmecrm/internal/webhook"
)

func main() {
	n := flag.Int("n", 500000, "requests to sign")
	contacts := flag.Int("contacts", 10000, "distinct contact ids")
	secret := flag.String("secret", "dev-only-webhook-secret", "webhook secret")
	out := flag.String("o", "", "output file")
	flag.Parse()
	f, err := os.Create(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	now := time.Now()
	ts := webhook.FormatTimestamp(now)
	occurred := now.UTC().Format(time.RFC3339Nano)
	a := `{"event_type":"contact.updated","event_id":"`
	b := `","timestamp":"` + occurred + `","data":{"contact_id":"`
	c := `","acme_first_name":"Jane","acme_last_name":"Roe","acme_email":"jane.roe@example.com",` +
		`"acme_phone":"555-123-4567","acme_company":"Acme Inc","acme_title":"Engineer",` +
		`"acme_address":"1 Main St, Springfield, IL 62701, USA","acme_notes":"Benchmark contact","acme_status":"Active",` +
		`"acme_tags":["vip","bench"],"acme_custom_fields":{"tier":"gold","score":42},"changed_fields":["acme_title"]}}`
	fmt.Fprintf(w, "%s\n%s\n%s\n%s\n", ts, a, b, c)
	run := now.UnixNano()
	for i := 0; i < *n; i++ {
		eid := fmt.Sprintf("evt_%x_%d", run, i)
		cid := fmt.Sprintf("bench-%d", rand.IntN(*contacts))
		body := a + eid + b + cid + c
		sig := webhook.SignAcme(ts, []byte(body), []byte(*secret))
		fmt.Fprintf(w, "%s %s %s\n", sig, eid, cid)
	}
	if err := w.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
