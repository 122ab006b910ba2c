package simulator

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/acmecrm/acmecrm/internal/webhook"
)

// EmitOptions describe webhooks written out, signed, instead of sent
// (acmecrm simulate --emit), for load tools that replay requests.
type EmitOptions struct {
	// Key is the secret to sign with; Events how many webhooks to write.
	Key    []byte
	Events int
	// MaxUpdates and DeleteRatio shape the lifecycles as for a load run.
	MaxUpdates  int
	DeleteRatio float64
	// Seed makes the data repeatable (0: random).
	Seed uint64
	// Now is the signing time (zero: the current time). A receiver refuses
	// the webhooks once they are older than its tolerance
	// (ACME_WEBHOOK_MAX_AGE, five minutes by default).
	Now time.Time
}

// Check reports options Emit refuses, before anything is written.
func (opts EmitOptions) Check() error {
	if opts.Events <= 0 {
		return fmt.Errorf("no number of webhooks to write (--events)")
	}
	if opts.DeleteRatio < 0 || opts.DeleteRatio > 1 {
		return fmt.Errorf("ratios must be between 0 and 1")
	}
	return nil
}

// Emit writes opts.Events webhooks of contact lifecycles (in order within
// each contact, unique event ids), one request per line: the headers as
// "Name: value" fields, then the body, all separated by tabs. A JSON body
// has no raw tab or newline, so the last field is the exact signed bytes.
func Emit(w io.Writer, opts EmitOptions) error {
	if err := opts.Check(); err != nil {
		return err
	}
	if opts.Seed == 0 {
		opts.Seed = rand.Uint64()
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	// The lifecycles are planned as a load run plans them.
	l := &Load{opts: LoadOptions{MaxUpdates: max(opts.MaxUpdates, 0), DeleteRatio: opts.DeleteRatio},
		finals: map[string]Final{}, complete: map[string]bool{}}
	rng := rand.New(rand.NewPCG(opts.Seed, 0))
	run := strconv.FormatUint(opts.Seed%1_000_000_007, 36) + "-" + strconv.FormatInt(opts.Now.UnixMilli()%1e7, 36)
	ts := webhook.FormatTimestamp(opts.Now)
	bw := bufio.NewWriterSize(w, 1<<16)
	for n, written := 0, 0; written < opts.Events; n++ {
		for _, ev := range l.plan(rng, fmt.Sprintf("emit-%s-%d", run, n)) {
			if written == opts.Events {
				break
			}
			fmt.Fprintf(bw, "Content-Type: application/json\t%s: %s\t%s: %s\t%s\n",
				webhook.HeaderAcmeTimestamp, ts, webhook.HeaderAcmeSignature, webhook.SignAcme(ts, ev.body, opts.Key), ev.body)
			written++
		}
	}
	return bw.Flush()
}

// ReadEmitted splits one line that Emit wrote (with or without its
// newline) into the request's headers and its body.
func ReadEmitted(line string) (http.Header, []byte, error) {
	fields := strings.Split(strings.TrimSuffix(line, "\n"), "\t")
	h := make(http.Header, len(fields)-1)
	for _, f := range fields[:len(fields)-1] {
		name, value, ok := strings.Cut(f, ": ")
		if !ok || name == "" {
			return nil, nil, fmt.Errorf("emitted webhook: header field %q is not \"Name: value\"", f)
		}
		h.Set(name, value)
	}
	return h, []byte(fields[len(fields)-1]), nil
}
