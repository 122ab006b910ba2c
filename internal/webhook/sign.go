package webhook

import (
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// FormatTimestamp writes a send time the way AcmeCRM does
// (2025-05-19T00:00:00.000Z).
func FormatTimestamp(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// SignAcme returns AcmeCRM's X-Acme-Signature value for body sent at the
// timestamp string ts, with one signature per key (a rotation sends two).
func SignAcme(ts string, body []byte, keys ...[]byte) string {
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = "sha256=" + hex.EncodeToString(acmeMAC(k, ts, body))
	}
	return strings.Join(parts, ",")
}

// SignStandard returns the Standard Webhooks webhook-signature value.
func SignStandard(id string, ts int64, body []byte, keys ...[]byte) string {
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = "v1," + base64.StdEncoding.EncodeToString(standardMAC(k, id, strconv.FormatInt(ts, 10), body))
	}
	return strings.Join(parts, " ")
}

// AcmeHeaders sets the AcmeCRM signature headers for body sent at t.
func AcmeHeaders(h http.Header, t time.Time, body []byte, keys ...[]byte) {
	ts := FormatTimestamp(t)
	h.Set(HeaderAcmeTimestamp, ts)
	h.Set(HeaderAcmeSignature, SignAcme(ts, body, keys...))
}
