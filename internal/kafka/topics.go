package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Topic is a topic the service needs.
type Topic struct {
	Name       string
	Partitions int32
	Retention  time.Duration
}

// EnsureTopics creates the topics that do not exist yet (existing ones are
// left as they are).
func EnsureTopics(ctx context.Context, cl *kgo.Client, topics ...Topic) error {
	adm := kadm.NewClient(cl)
	for _, t := range topics {
		ms := strconv.FormatInt(t.Retention.Milliseconds(), 10)
		res, err := adm.CreateTopic(ctx, t.Partitions, -1, map[string]*string{"retention.ms": &ms}, t.Name)
		if err == nil {
			err = res.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", t.Name, err)
		}
	}
	return nil
}
