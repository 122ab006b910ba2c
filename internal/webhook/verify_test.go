package webhook

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/acmecrm/acmecrm"
)

const vectorBody = `{"event_type":"contact.deleted","event_id":"evt_1","timestamp":"2025-05-19T00:00:00Z","data":{"contact_id":"1234"}}`

// Signatures computed independently with
//
//	printf '%s%s' "$TS" "$BODY" | openssl dgst -sha256 -hmac acme-test-secret
var acmeVectors = []struct{ ts, sig string }{
	{"2025-05-19T00:00:00.000Z", "6d641159ba6d4ea6f18cc39e5e09db431365c231f9cedce64795779eb52ea85a"},
	{"1747612800", "5e735f75ce90dc44b706efe2e4217bfbddb6b7279ea5e2bae6503e0783ba6545"},
}

func vectorVerifier(t *testing.T, now time.Time) *Verifier {
	t.Helper()
	secrets, err := ParseSecrets("acme-test-secret", "old-secret-1, old-secret-2")
	if err != nil {
		t.Fatal(err)
	}
	return &Verifier{Secrets: secrets, MaxAge: 5 * time.Minute, Now: func() time.Time { return now }}
}

func TestAcmeVectorsComputedWithOpenSSL(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 5, 19, 0, 1, 0, 0, time.UTC)
	v := vectorVerifier(t, now)
	for _, vec := range acmeVectors {
		if got := SignAcme(vec.ts, []byte(vectorBody), []byte("acme-test-secret")); got != "sha256="+vec.sig {
			t.Errorf("SignAcme(%s) = %s, want sha256=%s", vec.ts, got, vec.sig)
		}
		h := http.Header{}
		h.Set(HeaderAcmeTimestamp, vec.ts)
		h.Set(HeaderAcmeSignature, "sha256="+vec.sig)
		got, err := v.Verify(h, []byte(vectorBody))
		if err != nil || got.Scheme != SchemeAcme || got.SecretID != "current" {
			t.Errorf("verify %s: %+v %v", vec.ts, got, err)
		}
	}
}

// The Standard Webhooks specification's published test vector.
func TestStandardWebhooksPublishedVector(t *testing.T) {
	t.Parallel()
	s, err := ParseSecret("current", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"test": 2432232314}`)
	const want = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	if got := SignStandard("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, s.Key); got != want {
		t.Fatalf("SignStandard = %s, want %s", got, want)
	}
	v := &Verifier{Secrets: []Secret{s}, MaxAge: 5 * time.Minute, Now: func() time.Time { return time.Unix(1614265330, 0) }}
	h := http.Header{}
	h.Set(HeaderID, "msg_p5jXN8AQM9LWM0D4loKWxJek")
	h.Set(HeaderTimestamp, "1614265330")
	h.Set(HeaderSignature, want)
	got, err := v.Verify(h, body)
	if err != nil || got.Scheme != SchemeStandard || got.MessageID != "msg_p5jXN8AQM9LWM0D4loKWxJek" {
		t.Fatalf("verify: %+v %v", got, err)
	}
	body[5] ^= 1
	if _, err := v.Verify(h, body); code(err) != "INVALID_SIGNATURE" {
		t.Errorf("tampered body: %v", err)
	}
}

func code(err error) string {
	var e *acmecrm.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func TestSignatureMatrix(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	v := vectorVerifier(t, now)
	body := []byte(vectorBody)
	cur, old := []byte("acme-test-secret"), []byte("old-secret-2")
	ts := FormatTimestamp(now)
	sign := func(ts string, b []byte, keys ...[]byte) string { return SignAcme(ts, b, keys...) }
	tampered := append([]byte(nil), body...)
	tampered[10] = 'X'

	cases := []struct {
		name     string
		headers  map[string]string
		body     []byte
		wantCode string
		secretID string
	}{
		{"valid", map[string]string{HeaderAcmeTimestamp: ts, HeaderAcmeSignature: sign(ts, body, cur)}, body, "", "current"},
		{"previous secret", map[string]string{HeaderAcmeTimestamp: ts, HeaderAcmeSignature: sign(ts, body, old)}, body, "", "previous-2"},
		{"rotation: two signatures", map[string]string{HeaderAcmeTimestamp: ts, HeaderAcmeSignature: sign(ts, body, []byte("unknown"), cur)}, body, "", "current"},
		{"unix seconds", map[string]string{HeaderAcmeTimestamp: "1767268800", HeaderAcmeSignature: sign("1767268800", body, cur)}, body, "", "current"},
		{"offset timestamp", map[string]string{HeaderAcmeTimestamp: "2026-01-01T04:00:00-08:00", HeaderAcmeSignature: sign("2026-01-01T04:00:00-08:00", body, cur)}, body, "", "current"},
		{"lower-case t and z (RFC 3339 §5.6)", map[string]string{HeaderAcmeTimestamp: "2026-01-01t12:00:00z", HeaderAcmeSignature: sign("2026-01-01t12:00:00z", body, cur)}, body, "", "current"},
		{"wrong secret", map[string]string{HeaderAcmeTimestamp: ts, HeaderAcmeSignature: sign(ts, body, []byte("guess"))}, body, "INVALID_SIGNATURE", ""},
		{"tampered body", map[string]string{HeaderAcmeTimestamp: ts, HeaderAcmeSignature: sign(ts, body, cur)}, tampered, "INVALID_SIGNATURE", ""},
		{"tampered timestamp", map[string]string{HeaderAcmeTimestamp: FormatTimestamp(now.Add(time.Second)), HeaderAcmeSignature: sign(ts, body, cur)}, body, "INVALID_SIGNATURE", ""},
		{"same instant, other spelling", map[string]string{HeaderAcmeTimestamp: "2026-01-01T12:00:00Z", HeaderAcmeSignature: sign(ts, body, cur)}, body, "INVALID_SIGNATURE", ""},
		{"stale", map[string]string{HeaderAcmeTimestamp: FormatTimestamp(now.Add(-6 * time.Minute)), HeaderAcmeSignature: sign(FormatTimestamp(now.Add(-6*time.Minute)), body, cur)}, body, "INVALID_TIMESTAMP", ""},
		{"future", map[string]string{HeaderAcmeTimestamp: FormatTimestamp(now.Add(6 * time.Minute)), HeaderAcmeSignature: sign(FormatTimestamp(now.Add(6*time.Minute)), body, cur)}, body, "INVALID_TIMESTAMP", ""},
		{"far future (a duration would overflow)", map[string]string{HeaderAcmeTimestamp: "9999-12-31T23:59:59Z", HeaderAcmeSignature: sign("9999-12-31T23:59:59Z", body, cur)}, body, "INVALID_TIMESTAMP", ""},
		{"far future, unix seconds", map[string]string{HeaderAcmeTimestamp: "99999999999", HeaderAcmeSignature: sign("99999999999", body, cur)}, body, "INVALID_TIMESTAMP", ""},
		{"far past", map[string]string{HeaderAcmeTimestamp: "0001-01-01T00:00:00Z", HeaderAcmeSignature: sign("0001-01-01T00:00:00Z", body, cur)}, body, "INVALID_TIMESTAMP", ""},
		{"within tolerance", map[string]string{HeaderAcmeTimestamp: FormatTimestamp(now.Add(-4 * time.Minute)), HeaderAcmeSignature: sign(FormatTimestamp(now.Add(-4*time.Minute)), body, cur)}, body, "", "current"},
		{"no headers", map[string]string{}, body, "MISSING_SIGNATURE", ""},
		{"signature only", map[string]string{HeaderAcmeSignature: sign(ts, body, cur)}, body, "MISSING_SIGNATURE", ""},
		{"timestamp only", map[string]string{HeaderAcmeTimestamp: ts}, body, "MISSING_SIGNATURE", ""},
		{"malformed: no prefix", map[string]string{HeaderAcmeTimestamp: ts, HeaderAcmeSignature: strings.TrimPrefix(sign(ts, body, cur), "sha256=")}, body, "INVALID_SIGNATURE", ""},
		{"malformed: short", map[string]string{HeaderAcmeTimestamp: ts, HeaderAcmeSignature: "sha256=abcd"}, body, "INVALID_SIGNATURE", ""},
		{"malformed: md5", map[string]string{HeaderAcmeTimestamp: ts, HeaderAcmeSignature: "md5=" + strings.Repeat("a", 32)}, body, "INVALID_SIGNATURE", ""},
		{"malformed timestamp", map[string]string{HeaderAcmeTimestamp: "yesterday", HeaderAcmeSignature: sign("yesterday", body, cur)}, body, "INVALID_TIMESTAMP", ""},
		{"too many signatures", map[string]string{HeaderAcmeTimestamp: ts, HeaderAcmeSignature: strings.Repeat(sign(ts, body, cur)+",", 9) + sign(ts, body, cur)}, body, "INVALID_SIGNATURE", ""},
		{"empty body", map[string]string{HeaderAcmeTimestamp: ts, HeaderAcmeSignature: sign(ts, body, cur)}, []byte{}, "INVALID_SIGNATURE", ""},
		{"empty body signed", map[string]string{HeaderAcmeTimestamp: ts, HeaderAcmeSignature: sign(ts, nil, cur)}, []byte{}, "", "current"},
	}
	for _, c := range cases {
		h := http.Header{}
		for k, val := range c.headers {
			h.Set(k, val)
		}
		got, err := v.Verify(h, c.body)
		if code(err) != c.wantCode {
			t.Errorf("%s: code %q (err %v), want %q", c.name, code(err), err, c.wantCode)
			continue
		}
		if c.wantCode == "" && got.SecretID != c.secretID {
			t.Errorf("%s: secret %q, want %q", c.name, got.SecretID, c.secretID)
		}
	}
}

func TestStandardWebhooksMatrix(t *testing.T) {
	t.Parallel()
	now := time.Unix(1767268800, 0)
	v := vectorVerifier(t, now)
	body := []byte(vectorBody)
	key := []byte("acme-test-secret")
	good := func(ts int64) http.Header {
		h := http.Header{}
		h.Set(HeaderID, "msg_1")
		h.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
		h.Set(HeaderSignature, SignStandard("msg_1", ts, body, key))
		return h
	}
	if got, err := v.Verify(good(now.Unix()), body); err != nil || got.SecretID != "current" {
		t.Fatalf("valid: %v", err)
	}
	if _, err := v.Verify(good(now.Unix()-301), body); code(err) != "INVALID_TIMESTAMP" {
		t.Errorf("stale: %v", err)
	}
	if _, err := v.Verify(good(999999999999), body); code(err) != "INVALID_TIMESTAMP" {
		t.Errorf("year 33658: %v", err)
	}
	h := good(now.Unix())
	h.Set(HeaderID, "msg_2") // the id is signed too
	if _, err := v.Verify(h, body); code(err) != "INVALID_SIGNATURE" {
		t.Errorf("other id: %v", err)
	}
	h = good(now.Unix())
	h.Del(HeaderID)
	if _, err := v.Verify(h, body); code(err) != "MISSING_SIGNATURE" {
		t.Errorf("no id: %v", err)
	}
	h = good(now.Unix())
	h.Set(HeaderSignature, "v1a,abc v2,xyz")
	if _, err := v.Verify(h, body); code(err) != "INVALID_SIGNATURE" {
		t.Errorf("no v1: %v", err)
	}
	h = good(now.Unix())
	h.Set(HeaderSignature, "v1,"+strings.Repeat("A", 43)+"= "+h.Get(HeaderSignature))
	if _, err := v.Verify(h, body); err != nil {
		t.Errorf("rotation with two v1 signatures: %v", err)
	}
}

func FuzzVerifyHeaders(f *testing.F) {
	f.Add("2026-01-01T12:00:00.000Z", "sha256="+strings.Repeat("a", 64), "", "", "", []byte(vectorBody))
	f.Add("", "", "msg_1", "1767268800", "v1,"+strings.Repeat("A", 44), []byte("{}"))
	f.Add("1767268800", "sha256=,sha256=zz", "", "", "", []byte{})
	f.Fuzz(func(t *testing.T, acmeTS, acmeSig, id, ts, sig string, body []byte) {
		v := &Verifier{Secrets: []Secret{{ID: "current", Key: []byte("k")}}, MaxAge: time.Hour, Now: time.Now}
		h := http.Header{}
		for k, val := range map[string]string{HeaderAcmeTimestamp: acmeTS, HeaderAcmeSignature: acmeSig, HeaderID: id, HeaderTimestamp: ts, HeaderSignature: sig} {
			if val != "" {
				h.Set(k, val)
			}
		}
		got, err := v.Verify(h, body)
		if err == nil {
			// Accepting means a signature really matched.
			if got.Scheme == SchemeAcme && !strings.Contains(acmeSig, SignAcme(acmeTS, body, []byte("k"))[7:]) {
				t.Fatalf("accepted a wrong AcmeCRM signature")
			}
			return
		}
		switch code(err) {
		case "MISSING_SIGNATURE", "INVALID_SIGNATURE", "INVALID_TIMESTAMP":
		default:
			t.Fatalf("unexpected error %v", err)
		}
	})
}
