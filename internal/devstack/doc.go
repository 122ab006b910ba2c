// Package devstack starts the infrastructure the service needs on this
// machine: a real PostgreSQL server and a real Redis server from the
// machine's own binaries, and franz-go's kfake as an in-process
// Kafka-protocol broker. Everything listens on loopback only.
//
// It serves two users: `acmecrm dev` (the local run, data kept under a
// project folder so that a restart keeps contacts and unconsumed events) and
// the test suites (ephemeral data, fsync off). Child processes are started
// with a parent-death signal, so they stop even when the parent is killed
// with SIGKILL.
package devstack
