package acmecrm

import (
	"errors"
	"fmt"
)

// Kind classifies an error by what the caller can do about it. Only
// internal/httpapi turns kinds into HTTP status codes.
type Kind int

// The error kinds. KindInternal is the zero value so that an Error built
// without a kind is never mistaken for a client error.
const (
	KindInternal Kind = iota
	KindInvalid
	KindUnauthorized
	KindForbidden
	KindNotFound
	KindConflict
	KindPreconditionFailed
	KindPreconditionRequired
	KindTooLarge
	KindUnsupportedMediaType
	KindRateLimited
	KindUnavailable
	KindTimeout
)

var kindNames = [...]string{
	KindInternal:             "internal",
	KindInvalid:              "invalid",
	KindUnauthorized:         "unauthorized",
	KindForbidden:            "forbidden",
	KindNotFound:             "not found",
	KindConflict:             "conflict",
	KindPreconditionFailed:   "precondition failed",
	KindPreconditionRequired: "precondition required",
	KindTooLarge:             "too large",
	KindUnsupportedMediaType: "unsupported media type",
	KindRateLimited:          "rate limited",
	KindUnavailable:          "unavailable",
	KindTimeout:              "timeout",
}

func (k Kind) String() string {
	if k < 0 || int(k) >= len(kindNames) {
		return fmt.Sprintf("kind(%d)", int(k))
	}
	return kindNames[k]
}

// Error is an error that is safe to show to a client: Message and Details
// never contain internals. Code is the machine-readable code of the SPEC §8
// envelope (for example INVALID_INPUT or VERSION_CONFLICT).
type Error struct {
	Kind    Kind
	Code    string
	Message string
	Details any
	// Err is the underlying cause, kept for logs and errors.Is; never shown.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds a client-safe Error.
func Errorf(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorKind reports the kind of err: the kind of the first *Error in its
// chain, or KindInternal.
func ErrorKind(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

// FieldError is one failing field of a validation error. Path is a JSON
// pointer-like dotted path such as "data.email".
type FieldError struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

// Problems collects field errors so that validation reports every problem at
// once instead of stopping at the first.
type Problems []FieldError

// Add records a problem with the field at path.
func (p *Problems) Add(path, format string, args ...any) {
	*p = append(*p, FieldError{Path: path, Message: fmt.Sprintf(format, args...)})
}

// Err returns nil when there are no problems, else an invalid-input Error
// whose Details lists them.
func (p Problems) Err(message string) error {
	if len(p) == 0 {
		return nil
	}
	return &Error{Kind: KindInvalid, Code: "INVALID_INPUT", Message: message, Details: map[string]any{"errors": []FieldError(p)}}
}
