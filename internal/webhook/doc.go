// Package webhook is the receiver's first step and the simulator's last:
// it verifies the signature of an inbound AcmeCRM webhook on the raw body
// bytes (AcmeCRM's own scheme and Standard Webhooks, with the current and
// previous secrets), parses and validates the payload of both dialects
// against JSON Schema into one normalised acmecrm.Event, and signs payloads
// exactly the way it verifies them.
package webhook
