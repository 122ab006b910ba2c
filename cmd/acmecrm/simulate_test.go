package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/acmecrm/acmecrm"
	"github.com/acmecrm/acmecrm/internal/postgres"
	"github.com/acmecrm/acmecrm/internal/simulator"
)

// authed sends an authenticated JSON request and decodes the answer.
func authed(t *testing.T, method, url, token string, body any, headers ...string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return do(t, req)
}

// do sends req and decodes the JSON answer (nil when it is not JSON).
func do(t *testing.T, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// startAsAdmin starts `acmecrm serve` with a bootstrap admin and logs in.
func startAsAdmin(t *testing.T, vars map[string]string) (*service, string) {
	t.Helper()
	vars["ADMIN_USERNAME"], vars["ADMIN_PASSWORD"] = "ops@example.com", "ops-password-1"
	s := startService(t, vars, "serve")
	code, token := login(t, s.base, "ops@example.com", "ops-password-1")
	if code != 200 {
		t.Fatalf("admin login: %d", code)
	}
	return s, token
}

// The load generator's contacts flow through the whole pipeline and end
// equal to the last event of each lifecycle, even with duplicates and
// reordered sends.
func TestSimulateLoadConvergesThroughThePipeline(t *testing.T) {
	t.Parallel()
	vars := testEnv(t)
	s := startService(t, vars, "serve")

	// The CLI: a summary that adds up, exit 0.
	code, out, errOut := runCLI(t, env(vars), "simulate", "--url", s.base+"/api/webhooks", "--secret", "test-webhook-secret",
		"--events", "150", "--rate", "0", "--concurrency", "4", "--duplicate-ratio", "0.2", "--json", "--quiet")
	var sum simulator.Summary
	if err := json.Unmarshal([]byte(out), &sum); code != 0 || err != nil {
		t.Fatalf("simulate: exit %d, %v\n%s\n%s", code, err, out, errOut)
	}
	if sum.Sent < 150 || sum.Accepted != 150 || sum.Accepted+sum.Duplicate != sum.Sent || sum.Duplicate == 0 ||
		len(sum.Rejected) != 0 || sum.Errors != 0 || sum.LatencyMs.P50 <= 0 || sum.LatencyMs.Max < sum.LatencyMs.P99 {
		t.Fatalf("summary: %+v", sum)
	}
	// The service's address alone means its receiver.
	code, out, errOut = runCLI(t, env(vars), "simulate", "--url", s.base, "--secret", "test-webhook-secret",
		"--events", "5", "--rate", "0", "--json", "--quiet")
	if err := json.Unmarshal([]byte(out), &sum); code != 0 || err != nil || sum.Accepted != 5 || sum.URL != s.base+"/api/webhooks" {
		t.Fatalf("simulate --url %s: exit %d, %v, %+v\n%s", s.base, code, err, sum, errOut)
	}
	// A wrong secret: every webhook refused, exit 1, counted by status.
	code, out, _ = runCLI(t, env(vars), "simulate", "--url", s.base+"/api/webhooks", "--secret", "wrong",
		"--events", "5", "--rate", "0", "--quiet")
	if code != 1 || !strings.Contains(out, "rejected    401: 5") {
		t.Fatalf("wrong secret: exit %d\n%s", code, out)
	}

	// The library: reordered and duplicated lifecycles converge.
	load, err := simulator.NewLoad(simulator.LoadOptions{
		URL: s.base + "/api/webhooks", Key: []byte("test-webhook-secret"), Concurrency: 6, Events: 400,
		MaxUpdates: 4, DeleteRatio: 0.3, DuplicateRatio: 0.1, ReorderRatio: 0.4, Seed: 42,
	})
	if err != nil {
		t.Fatal(err)
	}
	if sum := load.Run(context.Background()); sum.Errors != 0 || len(sum.Rejected) != 0 {
		t.Fatalf("load: %+v", sum)
	}
	finals := load.Finals()
	if len(finals) < 50 {
		t.Fatalf("only %d complete lifecycles", len(finals))
	}
	pool, err := postgres.Open(context.Background(), vars["DATABASE_URL"], 4)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	store := postgres.NewStore(pool, postgres.StoreOptions{})
	deadline := time.Now().Add(60 * time.Second)
	for id, want := range finals {
		for {
			c, err := store.ContactBySource(context.Background(), acmecrm.SourceAcme, id)
			mismatch := err != nil || (c.Status == acmecrm.StatusDeleted) != want.Deleted
			if err == nil && !want.Deleted {
				w := acmecrm.FromAcme(want.Data)
				mismatch = mismatch || c.Email != w.Email || c.Title != w.Title || c.Phone != w.Phone ||
					c.Company != w.Company || c.Status != w.Status || !slices.Equal(c.Tags, w.Tags) || c.Address != w.Address
			}
			if !mismatch {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("contact %s: got %+v (err %v), want deleted=%v %+v", id, c, err, want.Deleted, want.Data)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// With the auto-trigger on, API changes of an AcmeCRM contact go out as
// webhooks, come back through the pipeline, and change nothing: no loop,
// no version bump.
func TestAutoTriggerRoundTripDoesNotLoopOrBumpVersions(t *testing.T) {
	t.Parallel()
	vars := testEnv(t)
	vars["WEBHOOK_SIMULATOR_AUTO_TRIGGER"] = "true"
	vars["WEBHOOK_SIMULATOR_RETRY_INITIAL_DELAY"] = "50"
	s, token := startAsAdmin(t, vars)

	// Each step: the API change, then wait until the webhook it triggered is
	// processed by the consumer, then check the contact did not move.
	processed := func(n int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, list := authed(t, "GET", s.base+"/api/webhooks?status=processed&limit=100", token, nil)
			if events, _ := list["data"].([]any); len(events) == n {
				return
			} else if len(events) > n {
				t.Fatalf("%d webhooks processed, want %d (a loop?)", len(events), n)
			}
			if time.Now().After(deadline) {
				_, all := authed(t, "GET", s.base+"/api/simulator/webhooks/history", token, nil)
				t.Fatalf("webhook %d never processed; deliveries: %v", n, all)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	version := func(id string) float64 {
		t.Helper()
		code, body := authed(t, "GET", s.base+"/api/contacts/"+id+"?x=1", token, nil)
		if code != 200 {
			t.Fatalf("get contact: %d %v", code, body)
		}
		return body["data"].(map[string]any)["version"].(float64)
	}

	code, body := authed(t, "POST", s.base+"/api/contacts", token, map[string]any{
		"firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com", "source": "acmecrm", "sourceId": "crm-ada",
		"address": map[string]any{"street": "1 Main St", "city": "Springfield", "state": "IL", "zipCode": "62701", "country": "USA"},
		"tags":    []string{"vip"}, "customFields": map[string]any{"tier": "gold", "seats": 3, "active": true},
	})
	if code != 201 {
		t.Fatalf("create: %d %v", code, body)
	}
	id := body["data"].(map[string]any)["id"].(string)
	processed(1)
	if v := version(id); v != 1 {
		t.Fatalf("after the created round trip: version %v, want 1", v)
	}
	if code, body := authed(t, "PATCH", s.base+"/api/contacts/"+id, token, map[string]any{"title": "Countess"}, "If-Match", `"1"`); code != 200 {
		t.Fatalf("patch: %d %v", code, body)
	}
	processed(2)
	if v := version(id); v != 2 {
		t.Fatalf("after the updated round trip: version %v, want 2", v)
	}
	if code, body := authed(t, "DELETE", s.base+"/api/contacts/"+id, token, nil); code != 200 {
		t.Fatalf("delete: %d %v", code, body)
	}
	processed(3)
	if v := version(id); v != 3 {
		t.Fatalf("after the deleted round trip: version %v, want 3", v)
	}
	_, hist := authed(t, "GET", s.base+"/api/simulator/webhooks/history", token, nil)
	if total := hist["pagination"].(map[string]any)["total"]; total != 3.0 {
		t.Errorf("%v deliveries, want 3", total)
	}
	// A contact from another source triggers nothing.
	if code, _ := authed(t, "POST", s.base+"/api/contacts", token, map[string]any{
		"firstName": "Bo", "lastName": "B", "email": "bo@example.com", "source": "api", "sourceId": strconv.Itoa(7)}); code != 201 {
		t.Fatal("create api contact")
	}
	_, hist = authed(t, "GET", s.base+"/api/simulator/webhooks/history", token, nil)
	if total := hist["pagination"].(map[string]any)["total"]; total != 3.0 {
		t.Errorf("a non-AcmeCRM contact triggered a webhook: %v deliveries", total)
	}
}

// An admin's simulated webhook goes to the service's own receiver by
// default and becomes a contact; one signed with a wrong secret is refused
// by the receiver, fails without a retry and creates nothing.
func TestSimulatorDeliveriesToOwnReceiverProduceContacts(t *testing.T) {
	t.Parallel()
	vars := testEnv(t)
	s, token := startAsAdmin(t, vars)

	send := func(sourceID string, badSignature bool) map[string]any {
		t.Helper()
		code, body := authed(t, "POST", s.base+"/api/simulator/webhooks", token, map[string]any{
			"eventType": "contact.created", "badSignature": badSignature,
			"data": map[string]any{"sourceId": sourceID, "firstName": "Grace", "lastName": "Hopper", "email": sourceID + "@example.com"},
		})
		if code != 202 {
			t.Fatalf("simulate: %d %v", code, body)
		}
		return body["delivery"].(map[string]any)
	}
	if d := send("crm-grace", false); d["status"] != "delivered" || d["lastStatusCode"] != 202.0 || d["attempts"] != 1.0 {
		t.Fatalf("delivery: %v", d)
	}
	if d := send("crm-forged", true); d["status"] != "failed" || d["lastStatusCode"] != 401.0 || d["attempts"] != 1.0 {
		t.Fatalf("badly signed delivery: %v", d)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := authed(t, "GET", s.base+"/api/contacts/source/acmecrm/crm-grace", token, nil)
		if code == 200 {
			if c := body["data"].(map[string]any); c["email"] != "crm-grace@example.com" || c["firstName"] != "Grace" {
				t.Fatalf("contact: %v", c)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the delivered webhook never became a contact: %d %v", code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, list := authed(t, "GET", s.base+"/api/webhooks?limit=100", token, nil)
	if events, _ := list["data"].([]any); len(events) != 1 {
		t.Errorf("%d webhooks stored, want only the validly signed one", len(events))
	}
	if code, _ := authed(t, "GET", s.base+"/api/contacts/source/acmecrm/crm-forged", token, nil); code != 404 {
		t.Errorf("the forged webhook's contact: %d, want 404", code)
	}
}

// Webhooks written by `simulate --emit` are requests another tool can
// replay as they are: each line's headers and body are accepted by the
// receiver, event ids are unique, a replayed line is a duplicate, and a
// changed byte fails the signature.
func TestSimulateEmitWritesReplayableWebhooks(t *testing.T) {
	t.Parallel()
	vars := testEnv(t)
	s := startService(t, vars, "serve", "--roles", "api")
	file := t.TempDir() + "/webhooks.tsv"
	code, out, errOut := runCLI(t, env(vars), "simulate", "--emit", file, "--events", "40", "--secret", "test-webhook-secret", "--delete-ratio", "0.5")
	if code != 0 || out != "" {
		t.Fatalf("emit: exit %d\n%s\n%s", code, out, errOut)
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	if len(lines) != 40 {
		t.Fatalf("%d lines, want 40", len(lines))
	}
	send := func(line string) (int, string) {
		header, body, err := simulator.ReadEmitted(line)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest("POST", s.base+"/api/webhooks", bytes.NewReader(body))
		req.Header = header
		code, m := do(t, req)
		status, _ := m["status"].(string)
		return code, status
	}
	ids := map[string]bool{}
	types := map[string]int{}
	for _, line := range lines {
		var p struct {
			EventID   string `json:"event_id"`
			EventType string `json:"event_type"`
		}
		if err := json.Unmarshal([]byte(line[strings.LastIndexByte(line, '\t')+1:]), &p); err != nil || ids[p.EventID] {
			t.Fatalf("body: %v, event id %q seen before: %v", err, p.EventID, ids[p.EventID])
		}
		ids[p.EventID] = true
		types[p.EventType]++
		if code, status := send(line); code != 202 || status != "accepted" {
			t.Fatalf("emitted webhook: %d %q\n%s", code, status, line)
		}
	}
	if types[acmecrm.EventContactCreated] == 0 || types[acmecrm.EventContactUpdated] == 0 || types[acmecrm.EventContactDeleted] == 0 {
		t.Fatalf("event types: %v", types)
	}
	if code, status := send(lines[0]); code != 202 || status != "duplicate" {
		t.Fatalf("replayed line: %d %q", code, status)
	}
	tampered := strings.Replace(lines[1], `"contact.`, `"contact_`, 1)
	if code, _ := send(tampered); code != 401 {
		t.Fatalf("tampered body: %d, want 401", code)
	}
}
