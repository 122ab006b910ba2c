package httpapi

import "net/http"

// addRoutes is the service's whole URL space, in one place.
func addRoutes(mux *http.ServeMux, opts Options) {
	started := opts.Now()
	mux.Handle("GET /health", handleHealth(opts.Version, started, opts.Now))
	mux.Handle("GET /healthz", handleLiveness())
	mux.Handle("GET /readyz", handleReadiness(opts.Checks, opts.Logger, opts.Now))

	// Everything else: 404, or 405 with Allow when the path exists under
	// another method.
	mux.Handle("/", handleUnmatched(mux, opts.Now))
}
