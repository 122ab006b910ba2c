package httpapi

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/acmecrm/acmecrm"
)

// probeMethods are tried to find which methods a path does support.
var probeMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// handleUnmatched answers requests no route took: 405 with Allow when the
// path is served under other methods, else 404 — both in the SPEC §8
// envelope. (ServeMux's own 404/405 replies are plain text.)
func handleUnmatched(mux *http.ServeMux, now func() time.Time) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var allow []string
		for _, m := range probeMethods {
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, pattern := mux.Handler(probe); pattern != "" && pattern != "/" {
				allow = append(allow, m)
			}
		}
		if len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeEnvelopeStatus(w, r, now, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "METHOD_NOT_ALLOWED",
				fmt.Sprintf("method %s is not allowed on this route", r.Method), map[string]any{"allow": allow})
			return
		}
		writeEnvelope(w, r, now, acmecrm.KindNotFound, "RESOURCE_NOT_FOUND",
			fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path), nil)
	})
}
