package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/acmecrm/acmecrm"
)

// Header names of the two schemes.
const (
	HeaderAcmeSignature = "X-Acme-Signature"
	HeaderAcmeTimestamp = "X-Acme-Timestamp"
	HeaderID            = "Webhook-Id"
	HeaderTimestamp     = "Webhook-Timestamp"
	HeaderSignature     = "Webhook-Signature"
)

// Schemes.
const (
	SchemeAcme     = "acme"
	SchemeStandard = "standard-webhooks"
)

// maxSignatures bounds how many signatures one request may carry (a
// rotation needs two; more is an attempt to make us compute).
const maxSignatures = 8

// Verifier checks signatures with a set of secrets.
type Verifier struct {
	Secrets []Secret
	// MaxAge is the tolerance of the timestamp, in both directions.
	MaxAge time.Duration
	Now    func() time.Time
}

// Verified describes a request whose signature checked out.
type Verified struct {
	Scheme    string
	SecretID  string
	Timestamp time.Time
	// MessageID is Standard Webhooks' webhook-id (empty for AcmeCRM's).
	MessageID string
}

func missing(msg string) error {
	return acmecrm.Errorf(acmecrm.KindUnauthorized, "MISSING_SIGNATURE", "%s", msg)
}

func invalid(msg string) error {
	return acmecrm.Errorf(acmecrm.KindUnauthorized, "INVALID_SIGNATURE", "%s", msg)
}

func badTime(msg string) error {
	return acmecrm.Errorf(acmecrm.KindUnauthorized, "INVALID_TIMESTAMP", "%s", msg)
}

// Verify checks the request's signature over the raw body, in the order
// presence → format → timestamp → HMAC, comparing in constant time. An
// AcmeCRM header selects AcmeCRM's scheme; otherwise Standard Webhooks'.
func (v *Verifier) Verify(h http.Header, body []byte) (Verified, error) {
	if h.Get(HeaderAcmeSignature) != "" || h.Get(HeaderAcmeTimestamp) != "" {
		return v.verifyAcme(h, body)
	}
	if h.Get(HeaderSignature) != "" || h.Get(HeaderTimestamp) != "" || h.Get(HeaderID) != "" {
		return v.verifyStandard(h, body)
	}
	return Verified{}, missing("missing X-Acme-Signature and X-Acme-Timestamp headers")
}

func (v *Verifier) verifyAcme(h http.Header, body []byte) (Verified, error) {
	sigHeader, tsHeader := h.Get(HeaderAcmeSignature), h.Get(HeaderAcmeTimestamp)
	if sigHeader == "" || tsHeader == "" {
		return Verified{}, missing("both X-Acme-Signature and X-Acme-Timestamp are required")
	}
	var sigs [][]byte
	for _, part := range strings.Split(sigHeader, ",") {
		hexSig, ok := strings.CutPrefix(strings.TrimSpace(part), "sha256=")
		raw, err := hex.DecodeString(hexSig)
		if !ok || err != nil || len(raw) != sha256.Size {
			return Verified{}, invalid("X-Acme-Signature must be sha256=<64 hex digits>[,sha256=…]")
		}
		sigs = append(sigs, raw)
	}
	if len(sigs) > maxSignatures {
		return Verified{}, invalid("too many signatures")
	}
	ts, err := ParseTimestamp(tsHeader)
	if err != nil {
		return Verified{}, badTime("X-Acme-Timestamp must be an RFC 3339 time or Unix seconds")
	}
	if err := v.checkAge(ts); err != nil {
		return Verified{}, err
	}
	for _, s := range v.Secrets {
		want := acmeMAC(s.Key, tsHeader, body)
		for _, got := range sigs {
			if hmac.Equal(got, want) {
				return Verified{Scheme: SchemeAcme, SecretID: s.ID, Timestamp: ts}, nil
			}
		}
	}
	return Verified{}, invalid("signature does not match")
}

func (v *Verifier) verifyStandard(h http.Header, body []byte) (Verified, error) {
	id, tsHeader, sigHeader := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || tsHeader == "" || sigHeader == "" {
		return Verified{}, missing("webhook-id, webhook-timestamp and webhook-signature are all required")
	}
	if len(id) > 255 || strings.ContainsAny(id, ".\r\n") {
		return Verified{}, invalid("webhook-id is malformed")
	}
	var sigs [][]byte
	for _, part := range strings.Fields(sigHeader) {
		version, b64, ok := strings.Cut(part, ",")
		if !ok {
			return Verified{}, invalid("webhook-signature must be v1,<base64>[ v1,<base64>]")
		}
		if version != "v1" {
			continue // other versions (v1a: asymmetric) are not ours to check
		}
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(raw) != sha256.Size {
			return Verified{}, invalid("webhook-signature must be v1,<base64>[ v1,<base64>]")
		}
		sigs = append(sigs, raw)
	}
	if len(sigs) == 0 || len(sigs) > maxSignatures {
		return Verified{}, invalid("webhook-signature has no usable v1 signature")
	}
	secs, err := strconv.ParseInt(tsHeader, 10, 64)
	if err != nil || secs < 0 || len(tsHeader) > 12 {
		return Verified{}, badTime("webhook-timestamp must be Unix seconds")
	}
	ts := time.Unix(secs, 0)
	if err := v.checkAge(ts); err != nil {
		return Verified{}, err
	}
	for _, s := range v.Secrets {
		want := standardMAC(s.Key, id, tsHeader, body)
		for _, got := range sigs {
			if hmac.Equal(got, want) {
				return Verified{Scheme: SchemeStandard, SecretID: s.ID, Timestamp: ts, MessageID: id}, nil
			}
		}
	}
	return Verified{}, invalid("signature does not match")
}

// checkAge compares instants, not their difference: a time.Duration holds
// ±292 years, so now − 9999-12-31 saturates at its minimum, whose negation
// overflows back to a negative number that looked within the tolerance.
func (v *Verifier) checkAge(ts time.Time) error {
	now := v.Now()
	if ts.Before(now.Add(-v.MaxAge)) {
		return badTime("the timestamp is too old")
	}
	if ts.After(now.Add(v.MaxAge)) {
		return badTime("the timestamp is in the future")
	}
	return nil
}

// ParseTimestamp reads an AcmeCRM timestamp: RFC 3339 / ISO 8601 with any
// fraction and offset, or whole Unix seconds.
func ParseTimestamp(s string) (time.Time, error) {
	if s != "" && len(s) <= 12 && strings.Trim(s, "0123456789") == "" {
		n, err := strconv.ParseInt(s, 10, 64)
		return time.Unix(n, 0), err
	}
	return parseDateTime(s)
}

// parseDateTime reads an RFC 3339 date-time. RFC 3339 lets the "T" and
// "Z" be written in lower case (§5.6), which JSON Schema's date-time
// format accepts and Go's layout does not: they are raised first.
func parseDateTime(s string) (time.Time, error) {
	if strings.ContainsAny(s, "tz") {
		s = strings.NewReplacer("t", "T", "z", "Z").Replace(s)
	}
	return time.Parse(time.RFC3339Nano, s)
}

func acmeMAC(key []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(ts))
	m.Write(body)
	return m.Sum(nil)
}

func standardMAC(key []byte, id, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}
