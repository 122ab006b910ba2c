package devstack

import (
	"context"
	"errors"
	"io"
	"path/filepath"
)

// Options selects and configures the parts of a Stack.
type Options struct {
	// Dir is the root folder; each server keeps its data in a subfolder
	// (postgres/, redis/, kafka/). Required.
	Dir string
	// Durable keeps data safe across crashes (fsync on, Redis AOF, Kafka
	// data on disk). The local run is durable; tests are not.
	Durable bool
	// Which servers to start. A part the user provides by URL is skipped.
	Postgres, Redis, Kafka bool
	// Preferred ports; 0 or taken picks a free one.
	PostgresPort, RedisPort, KafkaPort int
	// KafkaPartitions is the default partition count of new topics.
	KafkaPartitions int
	// Log receives the servers' output; nil discards it.
	Log io.Writer
}

// Stack is a set of running servers. Parts that were not asked for are nil.
type Stack struct {
	Postgres *Postgres
	Redis    *Redis
	Kafka    *Kafka
}

// Start starts the selected servers. On error, the ones already started are
// stopped again.
func Start(ctx context.Context, opts Options) (*Stack, error) {
	s := &Stack{}
	var err error
	if opts.Postgres {
		s.Postgres, err = StartPostgres(ctx, PostgresOptions{
			Dir: filepath.Join(opts.Dir, "postgres"), Port: opts.PostgresPort, Durable: opts.Durable, Log: opts.Log,
		})
		if err != nil {
			return nil, err
		}
	}
	if opts.Redis {
		s.Redis, err = StartRedis(RedisOptions{
			Dir: filepath.Join(opts.Dir, "redis"), Port: opts.RedisPort, Durable: opts.Durable, Log: opts.Log,
		})
		if err != nil {
			return nil, errors.Join(err, s.Stop())
		}
	}
	if opts.Kafka {
		kdir := ""
		if opts.Durable {
			kdir = filepath.Join(opts.Dir, "kafka")
		}
		s.Kafka, err = StartKafka(KafkaOptions{Dir: kdir, Port: opts.KafkaPort, Partitions: opts.KafkaPartitions})
		if err != nil {
			return nil, errors.Join(err, s.Stop())
		}
	}
	return s, nil
}

// Stop stops every running part, the broker first (it is the one clients
// of the others may still be writing to), and reports every failure.
func (s *Stack) Stop() error {
	if s.Kafka != nil {
		s.Kafka.Stop()
	}
	var errs []error
	if s.Redis != nil {
		errs = append(errs, s.Redis.Stop())
	}
	if s.Postgres != nil {
		errs = append(errs, s.Postgres.Stop())
	}
	return errors.Join(errs...)
}
