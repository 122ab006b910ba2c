package httpapi

import (
	_ "embed"
	"net/http"
)

// OpenAPI is the OpenAPI 3.1 document of every route (served at
// /openapi.json; a test validates real responses against it).
//
//go:embed openapi.json
var OpenAPI []byte

//go:embed docs.html
var docsPage []byte

// handleStatic serves an embedded document.
func handleStatic(contentType string, body []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Cache-Control", "public, max-age=300")
		if contentType == "text/html; charset=utf-8" {
			// The page runs only its own inline script and talks only to us.
			w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'")
		}
		_, _ = w.Write(body)
	})
}
