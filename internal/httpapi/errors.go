package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/acmecrm/acmecrm"
)

// errorBody is the SPEC §8 envelope.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Message   string `json:"message"`
	Type      string `json:"type"`
	Status    int    `json:"status"`
	Timestamp string `json:"timestamp"`
	Code      string `json:"code"`
	RequestID string `json:"requestId"`
	Details   any    `json:"details"`
}

// kindHTTP is the one table from error kind to status, envelope type and
// default code.
var kindHTTP = map[acmecrm.Kind]struct {
	status int
	typ    string
	code   string
}{
	acmecrm.KindInvalid:              {http.StatusBadRequest, "VALIDATION_ERROR", "INVALID_INPUT"},
	acmecrm.KindUnauthorized:         {http.StatusUnauthorized, "UNAUTHORIZED", "INVALID_TOKEN"},
	acmecrm.KindForbidden:            {http.StatusForbidden, "FORBIDDEN", "INSUFFICIENT_PERMISSIONS"},
	acmecrm.KindNotFound:             {http.StatusNotFound, "NOT_FOUND", "RESOURCE_NOT_FOUND"},
	acmecrm.KindConflict:             {http.StatusConflict, "CONFLICT", "RESOURCE_ALREADY_EXISTS"},
	acmecrm.KindPreconditionFailed:   {http.StatusPreconditionFailed, "PRECONDITION_FAILED", "VERSION_CONFLICT"},
	acmecrm.KindTooLarge:             {http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE", "PAYLOAD_TOO_LARGE"},
	acmecrm.KindUnsupportedMediaType: {http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", "UNSUPPORTED_MEDIA_TYPE"},
	acmecrm.KindPreconditionRequired: {http.StatusPreconditionRequired, "PRECONDITION_REQUIRED", "PRECONDITION_REQUIRED"},
	acmecrm.KindRateLimited:          {http.StatusTooManyRequests, "RATE_LIMIT", "TOO_MANY_REQUESTS"},
	acmecrm.KindUnavailable:          {http.StatusServiceUnavailable, "SERVICE_UNAVAILABLE", "SERVICE_UNAVAILABLE"},
	acmecrm.KindTimeout:              {http.StatusGatewayTimeout, "TIMEOUT_ERROR", "REQUEST_TIMEOUT"},
	acmecrm.KindInternal:             {http.StatusInternalServerError, "INTERNAL_ERROR", "INTERNAL_SERVER_ERROR"},
}

// classify turns any error into a client-safe *acmecrm.Error. Errors that
// are not ours become an internal error whose message reveals nothing.
func classify(err error) *acmecrm.Error {
	var e *acmecrm.Error
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &e):
		return e
	case errors.As(err, &tooBig):
		return acmecrm.Errorf(acmecrm.KindTooLarge, "PAYLOAD_TOO_LARGE", "request body exceeds %d bytes", tooBig.Limit)
	case errors.Is(err, context.DeadlineExceeded):
		return &acmecrm.Error{Kind: acmecrm.KindTimeout, Code: "REQUEST_TIMEOUT", Message: "the request took too long", Err: err}
	default:
		return &acmecrm.Error{Kind: acmecrm.KindInternal, Code: "INTERNAL_SERVER_ERROR", Message: "internal server error", Err: err}
	}
}

// statusClientClosedRequest is what a request is counted and logged as
// when its client hung up before the answer and the work stopped for that
// (nginx's 499). It is not a server error: counted as a 500, every
// search-as-you-type client that cancels its stale requests would raise
// the 5xx alert.
const statusClientClosedRequest = 499

// writeError answers with the envelope for err. Internal errors are logged
// here, once, with the request id; their cause never reaches the client.
func writeError(w http.ResponseWriter, r *http.Request, logger *slog.Logger, now func() time.Time, err error) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		// Nobody reads the answer; only the access log and metrics see it.
		setErrCode(r.Context(), "CLIENT_CLOSED_REQUEST")
		w.WriteHeader(statusClientClosedRequest)
		return
	}
	e := classify(err)
	if e.Kind == acmecrm.KindInternal {
		logger.ErrorContext(r.Context(), "internal error", "err", err)
	}
	writeEnvelope(w, r, now, e.Kind, e.Code, e.Message, e.Details)
}

// writeEnvelope writes the SPEC §8 envelope for kind with the given code
// (the kind's default when empty).
func writeEnvelope(w http.ResponseWriter, r *http.Request, now func() time.Time, kind acmecrm.Kind, code, message string, details any) {
	m, ok := kindHTTP[kind]
	if !ok {
		m = kindHTTP[acmecrm.KindInternal]
	}
	if code == "" {
		code = m.code
	}
	writeEnvelopeStatus(w, r, now, m.status, m.typ, code, message, details)
}

func writeEnvelopeStatus(w http.ResponseWriter, r *http.Request, now func() time.Time, status int, typ, code, message string, details any) {
	if details == nil {
		details = struct{}{}
	}
	setErrCode(r.Context(), code)
	if (status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests) && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", "5") // a 503 or 429 is temporary: tell senders when to come back
	}
	encode(w, status, errorBody{Error: errorDetail{
		Message:   message,
		Type:      typ,
		Status:    status,
		Timestamp: now().UTC().Format(time.RFC3339Nano),
		Code:      code,
		RequestID: requestID(r.Context()),
		Details:   details,
	}})
}
