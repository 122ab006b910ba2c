package simulator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/acmecrm/acmecrm/internal/postgres"
	"github.com/acmecrm/acmecrm/internal/webhook"
)

// RetryPolicy is the simulator's retry schedule (SPEC §7).
type RetryPolicy struct {
	// MaxRetries is how many retries follow the first attempt.
	MaxRetries int
	// InitialDelay doubles after each failure, up to MaxDelay.
	InitialDelay time.Duration
	MaxDelay     time.Duration
}

// maxRetryAfter caps a receiver's Retry-After so that one odd header
// cannot park a delivery for days.
const maxRetryAfter = time.Hour

// Backoff is the wait after the given number of failed attempts (≥ 1):
// the exponential delay min(InitialDelay·2^(failures−1), MaxDelay) with
// "equal jitter", uniform in [delay/2, delay], so that retries of many
// deliveries spread out but never come sooner than half the schedule.
func (p RetryPolicy) Backoff(failures int, jitter float64) time.Duration {
	d := p.InitialDelay
	for i := 1; i < failures && d < p.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, p.MaxDelay)
	return d/2 + time.Duration(jitter*float64(d/2))
}

// excerptBytes is how much of a response body an attempt keeps.
const excerptBytes = 1024

// drainBytes is how much more of a body is read (and dropped) so that
// the connection can be reused; a larger body closes the connection.
const drainBytes = 64 << 10

// retryable reports whether a response status is worth another attempt:
// 5xx, 408 and 429 are; other statuses are the receiver's final word.
func retryable(code int) bool {
	return code >= 500 || code == http.StatusRequestTimeout || code == http.StatusTooManyRequests
}

// attempt makes one claimed attempt and says what comes next. A retry
// re-signs the same body with a fresh timestamp.
func (s *Simulator) attempt(ctx context.Context, d postgres.Delivery) postgres.AttemptResult {
	started := s.opts.Now()
	res := postgres.AttemptResult{DeliveryID: d.ID, Attempt: d.Attempts, StartedAt: started}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()

	key := s.opts.Key
	if d.BadSignature {
		key = append([]byte("not-the-secret:"), key...)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.TargetURL, bytes.NewReader(d.Body))
	if err != nil {
		res.Error, res.Status = "build request: "+err.Error(), postgres.DeliveryFailed
		return res
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", s.opts.UserAgent)
	req.Header.Set("X-Acme-Delivery-Id", d.ID)
	webhook.AcmeHeaders(req.Header, started.Add(time.Duration(d.TimestampSkewSeconds)*time.Second), d.Body, key)

	resp, err := s.client.Do(req)
	res.Latency = s.opts.Now().Sub(started)
	var retryAfter time.Duration
	switch {
	case err != nil && errors.Is(err, errAddrNotAllowed):
		res.Error, res.Status = err.Error(), postgres.DeliveryFailed
	case err != nil:
		res.Error, res.Status = err.Error(), postgres.DeliveryPending
	default:
		res.StatusCode = resp.StatusCode
		excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, excerptBytes))
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainBytes))
		_ = resp.Body.Close()
		res.ResponseExcerpt = strings.ToValidUTF8(string(excerpt), "\uFFFD")
		switch code := resp.StatusCode; {
		case code >= 200 && code < 300:
			res.Status = postgres.DeliveryDelivered
		case code >= 300 && code < 400:
			res.Error, res.Status = fmt.Sprintf("HTTP %d: redirects are not followed", code), postgres.DeliveryFailed
		case retryable(code):
			res.Error, res.Status = fmt.Sprintf("HTTP %d", code), postgres.DeliveryPending
			retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), s.opts.Now())
		default:
			res.Error, res.Status = fmt.Sprintf("HTTP %d: not retried", code), postgres.DeliveryFailed
		}
	}
	if res.Status == postgres.DeliveryPending {
		if d.Attempts >= d.MaxAttempts {
			res.Status = postgres.DeliveryFailed
			res.Error += fmt.Sprintf(" (gave up after %d attempts)", d.Attempts)
		} else {
			res.RetryIn = max(s.opts.Retry.Backoff(d.Attempts, s.opts.Jitter()), min(retryAfter, maxRetryAfter))
		}
	}
	return res
}

// parseRetryAfter reads Retry-After in seconds or as an HTTP date, at most
// maxRetryAfter (a larger count of seconds would overflow a Duration);
// zero when absent or unreadable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil && n > 0 {
		return time.Duration(min(n, int64(maxRetryAfter/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), maxRetryAfter)
	}
	return 0
}
