package kafka

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// SASL settings reach the broker: the right password connects, a wrong one
// does not.
func TestSASL(t *testing.T) {
	t.Parallel()
	for _, mech := range []struct{ ours, kfake string }{{"plain", "PLAIN"}, {"scram-sha-256", "SCRAM-SHA-256"}, {"scram-sha-512", "SCRAM-SHA-512"}} {
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser(mech.kfake, "svc", "s3cret"))
		if err != nil {
			t.Fatal(err)
		}
		ping := func(pass string) error {
			cl, err := NewClient(Config{Brokers: c.ListenAddrs(), SASLMechanism: mech.ours, SASLUsername: "svc", SASLPassword: pass})
			if err != nil {
				return err
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return Ping(ctx, cl)
		}
		if err := ping("s3cret"); err != nil {
			t.Errorf("%s with the right password: %v", mech.ours, err)
		}
		if err := ping("wrong"); err == nil {
			t.Errorf("%s with a wrong password connected", mech.ours)
		}
		c.Close()
	}
	if _, err := Options(Config{Brokers: []string{"x:1"}, SASLMechanism: "kerberos"}); err == nil {
		t.Error("unknown mechanism accepted")
	}
	if _, err := Options(Config{}); err == nil {
		t.Error("no brokers accepted")
	}
}
