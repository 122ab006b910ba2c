package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/acmecrm/acmecrm/api"
	"github.com/acmecrm/acmecrm/internal/kafka"
)

// The records the service really produces on each topic match the
// AsyncAPI document: addresses, headers and payload schemas.
func TestKafkaRecordsMatchTheAsyncAPIDocument(t *testing.T) {
	t.Parallel()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(api.AsyncAPI))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft7) // AsyncAPI 3.0's schema dialect
	c.AssertFormat()
	if err := c.AddResource("urn:asyncapi", doc); err != nil {
		t.Fatal(err)
	}
	compile := func(ptr string) *jsonschema.Schema {
		s, err := c.Compile("urn:asyncapi#" + ptr)
		if err != nil {
			t.Fatalf("%s: %v", ptr, err)
		}
		return s
	}
	channels := doc.(map[string]any)["channels"].(map[string]any)
	type contract struct{ headers, payload *jsonschema.Schema }
	byTopic := map[string]contract{}
	for name, msg := range map[string]string{"contactEvents": "contactEvent", "contactEventsDLQ": "deadLetter", "contacts": "contactChange"} {
		topic := channels[name].(map[string]any)["address"].(string)
		ct := contract{headers: compile("/components/messages/" + msg + "/headers")}
		if msg != "deadLetter" {
			ct.payload = compile("/components/messages/" + msg + "/payload")
		}
		byTopic[topic] = ct
	}

	vars := testEnv(t)
	vars["EVENT_MAX_RETRIES"] = "0"
	s, token := startAsAdmin(t, vars)
	if code := postWebhook(t, s.base, contactWebhook("evt_async", "contact.created", "crm-async", "Ada", time.Now()),
		"application/json", "test-webhook-secret", "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"); code != 202 {
		t.Fatalf("webhook: %d", code)
	}
	if code, body := authed(t, "POST", s.base+"/api/contacts", token, map[string]any{
		"firstName": "Bo", "lastName": "B", "email": "bo@example.com", "source": "api", "sourceId": "bo-1"}); code != 201 {
		t.Fatalf("create: %d %v", code, body)
	}
	recordPoison(t, vars["DATABASE_URL"], "evt_async_poison")

	cl, err := kafka.NewClient(kafka.Config{Brokers: strings.Split(vars["KAFKA_BROKERS"], ",")},
		kgo.ConsumeTopics("contact-events", "contact-events-dlq", "contacts"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	seen := map[string]int{}
	deadline := time.Now().Add(30 * time.Second)
	for (seen["contact-events"] < 2 || seen["contact-events-dlq"] < 1 || seen["contacts"] < 1) && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			seen[r.Topic]++
			ct, ok := byTopic[r.Topic]
			if !ok {
				t.Errorf("a record on undocumented topic %s", r.Topic)
				return
			}
			headers := map[string]any{}
			for _, h := range r.Headers {
				headers[h.Key] = string(h.Value)
			}
			if err := ct.headers.Validate(headers); err != nil {
				t.Errorf("%s headers %v: %v", r.Topic, headers, err)
			}
			if len(r.Key) == 0 {
				t.Errorf("%s: a record without a key", r.Topic)
			}
			if ct.payload == nil {
				return
			}
			v, err := jsonschema.UnmarshalJSON(bytes.NewReader(r.Value))
			if err != nil {
				t.Errorf("%s: value is not JSON: %s", r.Topic, r.Value)
				return
			}
			if err := ct.payload.Validate(v); err != nil {
				t.Errorf("%s payload does not match the document: %v\n%s", r.Topic, err, r.Value)
			}
		})
	}
	if seen["contact-events"] < 2 || seen["contact-events-dlq"] < 1 || seen["contacts"] < 1 {
		t.Fatalf("records seen: %v", seen)
	}
}
