// Package api holds the service's machine-readable contracts that are not
// served over HTTP: the AsyncAPI document of its Kafka topics. (The OpenAPI
// document lives with the HTTP server, which serves it.)
package api

import _ "embed"

// AsyncAPI is the AsyncAPI 3.0 document of the Kafka topics.
//
//go:embed asyncapi.json
var AsyncAPI []byte
