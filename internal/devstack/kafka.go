package devstack

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kfake"
)

// KafkaOptions configures the embedded Kafka-protocol broker.
type KafkaOptions struct {
	// Dir keeps the broker's logs and offsets on disk; empty keeps them in
	// memory only.
	Dir string
	// Port to listen on; 0 picks a free one.
	Port int
	// Partitions is the default partition count of auto-created topics.
	Partitions int
	// Extra kfake options (fault injection in tests).
	Extra []kfake.Opt
}

// Kafka is franz-go's kfake broker running inside this process. It speaks
// the Kafka protocol on loopback, so the service reaches it through the same
// franz-go client it would use against a real cluster.
type Kafka struct {
	Cluster *kfake.Cluster
}

// StartKafka starts a single-node kfake cluster on 127.0.0.1.
func StartKafka(opts KafkaOptions) (*Kafka, error) {
	port, err := pickPort(opts.Port)
	if err != nil {
		return nil, err
	}
	kopts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.ClusterID("acmecrm-dev"),
	}
	if opts.Partitions > 0 {
		kopts = append(kopts, kfake.DefaultNumPartitions(opts.Partitions))
	}
	if opts.Dir != "" {
		kopts = append(kopts, kfake.DataDir(opts.Dir))
	}
	kopts = append(kopts, opts.Extra...)
	c, err := kfake.NewCluster(kopts...)
	if err != nil {
		return nil, fmt.Errorf("start kafka broker: %w", err)
	}
	return &Kafka{Cluster: c}, nil
}

// Brokers lists the seed broker addresses.
func (k *Kafka) Brokers() []string { return k.Cluster.ListenAddrs() }

// Stop closes the broker, flushing its data to disk.
func (k *Kafka) Stop() { k.Cluster.Close() }
