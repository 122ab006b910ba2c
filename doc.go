// Package acmecrm holds the vocabulary shared by the AcmeCRM integration
// service: the error kinds every layer speaks, and (as the pipeline grows) the
// contact and event types. It depends on the standard library only; adapters
// such as internal/postgres and internal/httpapi import it, never the reverse.
package acmecrm
