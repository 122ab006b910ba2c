// Package kafka owns the franz-go client configuration: brokers, TLS, SASL
// and client id. The outbox relay and the consumer build their clients here,
// so a real cluster drops in by setting KAFKA_BROKERS.
package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Config is how to reach the Kafka cluster.
type Config struct {
	Brokers       []string
	ClientID      string
	TLS           bool
	SASLMechanism string // "", "plain", "scram-sha-256" or "scram-sha-512"
	SASLUsername  string
	SASLPassword  string
}

// SASLMechanisms are the accepted values of Config.SASLMechanism.
var SASLMechanisms = []string{"plain", "scram-sha-256", "scram-sha-512"}

// Options turns cfg into franz-go client options.
func Options(cfg Config) ([]kgo.Opt, error) {
	if len(cfg.Brokers) == 0 {
		return nil, fmt.Errorf("kafka: no brokers")
	}
	opts := []kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}
	if cfg.ClientID != "" {
		opts = append(opts, kgo.ClientID(cfg.ClientID))
	}
	if cfg.TLS {
		opts = append(opts, kgo.DialTLSConfig(&tls.Config{MinVersion: tls.VersionTLS12}))
	}
	switch strings.ToLower(cfg.SASLMechanism) {
	case "":
	case "plain":
		opts = append(opts, kgo.SASL(plain.Auth{User: cfg.SASLUsername, Pass: cfg.SASLPassword}.AsMechanism()))
	case "scram-sha-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: cfg.SASLUsername, Pass: cfg.SASLPassword}.AsSha256Mechanism()))
	case "scram-sha-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: cfg.SASLUsername, Pass: cfg.SASLPassword}.AsSha512Mechanism()))
	default:
		return nil, fmt.Errorf("kafka: unknown SASL mechanism %q", cfg.SASLMechanism)
	}
	return opts, nil
}

// NewClient builds a client for cfg with extra options (producer or
// consumer settings) appended.
func NewClient(cfg Config, extra ...kgo.Opt) (*kgo.Client, error) {
	opts, err := Options(cfg)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	return cl, nil
}

// Ping checks that at least one broker answers.
func Ping(ctx context.Context, cl *kgo.Client) error {
	if err := cl.Ping(ctx); err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	return nil
}

// RefusedForGood reports a produce error that no retry of the same record
// can cure: the broker (or the client, before sending) refuses the record
// itself — too large, or invalid. A producer that retried it would hold
// back everything queued behind it.
func RefusedForGood(err error) bool {
	return errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge) || errors.Is(err, kerr.InvalidRecord)
}
