package httpapi

import (
	"encoding/json"
	"net/http"
)

// encode writes v as a JSON response with the given status.
func encode(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	// The status line is out; an encoding error can only be a broken
	// connection, which the access log shows.
	_ = json.NewEncoder(w).Encode(v)
}
