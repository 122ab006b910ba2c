package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/bcrypt"

	"github.com/acmecrm/acmecrm/internal/auth"
	"github.com/acmecrm/acmecrm/internal/infratest"
	"github.com/acmecrm/acmecrm/internal/ingest"
	"github.com/acmecrm/acmecrm/internal/postgres"
	"github.com/acmecrm/acmecrm/internal/ratelimit"
	"github.com/acmecrm/acmecrm/internal/simulator"
	"github.com/acmecrm/acmecrm/internal/telemetry"
	"github.com/acmecrm/acmecrm/internal/turns"
	"github.com/acmecrm/acmecrm/internal/webhook"
)

func TestMain(m *testing.M) { infratest.Main(m) }

// bundle is one test's running API on its own database and Redis prefix.
type bundle struct {
	t      *testing.T
	srv    *httptest.Server
	store  *postgres.Store
	pool   *pgxpool.Pool // the API's database connections
	rdb    *redis.Client
	auth   *auth.Service
	prefix string
	sim    *simulator.Simulator
	admin  string // an admin's token
	user   string // a user's token
	// seen, when set, is told of every call and its response.
	seen func(method, path string, r response)
}

type setupOpts struct {
	proxies     TrustedProxies
	redisURL    string // default: the run's shared Redis
	databaseURL string // default: a fresh database of the shared server
	limits      *Limits
	checks      []Check
	ttl         time.Duration
	logOut      io.Writer // default: discarded
	autoTrigger bool      // the simulator's auto-trigger
	metrics     bool      // serve /metrics
	statsMinAge time.Duration
	typeWindow  int64                // AuditTypeWindow
	passwords   *auth.PasswordChecks // default: NewServer's
	searches    *turns.Turns         // default: NewServer's
	poolSize    int                  // the API's database connections; default 20
}

var generousLimits = Limits{
	API:     ratelimit.Policy{Name: "api", Limit: 100000, Period: time.Minute},
	Login:   ratelimit.Policy{Name: "login", Limit: 100000, Period: time.Minute},
	Public:  ratelimit.Policy{Name: "public", Limit: 100000, Period: time.Minute},
	Webhook: ratelimit.Policy{Name: "webhook", Limit: 100000, Period: time.Minute},
}

// Webhook secrets of the test server.
var (
	webhookSecret  = []byte("test-webhook-secret")
	previousSecret = []byte("previous-webhook-secret")
)

// Test users' passwords.
const (
	adminPassword = "admin-password-1"
	userPassword  = "user-password-1"
)

func setup(t *testing.T, so ...setupOpts) *bundle {
	t.Helper()
	var o setupOpts
	if len(so) > 0 {
		o = so[0]
	}
	limits := generousLimits
	if o.limits != nil {
		limits = *o.limits
	}
	if o.ttl == 0 {
		o.ttl = time.Hour
	}
	dbURL := o.databaseURL
	if dbURL == "" {
		dbURL = infratest.DatabaseURL(t)
	}
	if o.poolSize == 0 {
		o.poolSize = 20
	}
	pool, err := postgres.Open(context.Background(), dbURL, o.poolSize)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	store := postgres.NewStore(pool, postgres.StoreOptions{})
	redisURL, prefix := infratest.Redis(t)
	if o.redisURL != "" {
		redisURL = o.redisURL
	}
	ropts, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	ropts.MaxRetries = -1 // a stopped Redis must fail fast in tests
	rdb := redis.NewClient(ropts)
	t.Cleanup(func() { rdb.Close() })
	a := auth.New(auth.Config{Secret: []byte(strings.Repeat("s", 32)), Issuer: "acmecrm", Audience: "acmecrm-api", TTL: o.ttl, KeyPrefix: prefix}, rdb)
	lim := ratelimit.New(rdb, prefix, nil)
	parser, err := webhook.NewParser(5 * time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	batcher := ingest.New(store, ingest.Options{Topic: "contact-events"})
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { _ = batcher.Run(ctx); close(stopped) }()
	logger := slog.New(slog.DiscardHandler)
	if o.logOut != nil {
		logger = slog.New(slog.NewJSONHandler(o.logOut, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	// The simulator targets this server's own receiver, as in production.
	srv := httptest.NewUnstartedServer(nil)
	receiverURL := "http://" + srv.Listener.Addr().String() + "/api/webhooks"
	targets, err := simulator.ParseTargets(receiverURL)
	if err != nil {
		t.Fatal(err)
	}
	sim := simulator.New(store, simulator.Options{
		Key: webhookSecret, Targets: targets, DefaultTarget: receiverURL, AutoTrigger: o.autoTrigger,
		Retry:        simulator.RetryPolicy{MaxRetries: 3, InitialDelay: 20 * time.Millisecond, MaxDelay: 200 * time.Millisecond},
		PollInterval: 50 * time.Millisecond, Timeout: 5 * time.Second,
	})
	var metrics *telemetry.Metrics
	if o.metrics {
		metrics = telemetry.NewMetrics("test")
	}
	srv.Config.Handler = NewServer(Options{
		Metrics: metrics,
		Logger:  logger, Version: "test", MaxBodyBytes: 64 << 10, WebhookMaxBodyBytes: 32 << 10,
		RequestTimeout: 10 * time.Second, Checks: o.checks, Store: store, Auth: a, Limiter: lim, Limits: limits, TrustedProxies: o.proxies,
		EventStatsMinAge: o.statsMinAge,
		AuditTypeWindow:  o.typeWindow,
		PasswordChecks:   o.passwords,
		Searches:         o.searches,
		Verifier: &webhook.Verifier{
			Secrets: []webhook.Secret{{ID: "current", Key: webhookSecret}, {ID: "previous-1", Key: previousSecret}},
			MaxAge:  5 * time.Minute, Now: time.Now,
		},
		Parser: parser, Ingest: batcher, Simulator: sim,
	})
	srv.Start()
	t.Cleanup(func() { srv.Close(); cancel(); <-stopped })
	b := &bundle{t: t, srv: srv, store: store, pool: pool, rdb: rdb, auth: a, prefix: prefix, sim: sim}
	b.addUser("admin@acmecrm.com", adminPassword, auth.RoleAdmin)
	b.addUser("user@acmecrm.com", userPassword, auth.RoleUser)
	b.admin = b.login("admin@acmecrm.com", adminPassword)
	b.user = b.login("user@acmecrm.com", userPassword)
	return b
}

func (b *bundle) addUser(name, password, role string) {
	b.t.Helper()
	h, err := auth.HashPasswordCost(password, bcrypt.MinCost)
	if err != nil {
		b.t.Fatal(err)
	}
	if _, err := b.store.CreateUser(context.Background(), name, h, role); err != nil {
		b.t.Fatal(err)
	}
}

func (b *bundle) login(name, password string) string {
	b.t.Helper()
	resp := b.call("POST", "/api/auth/login", "", map[string]string{"username": name, "password": password})
	if resp.status != 200 {
		b.t.Fatalf("login %s: %d %s", name, resp.status, resp.body)
	}
	return resp.json["token"].(string)
}

type response struct {
	status int
	header http.Header
	body   []byte
	json   map[string]any
}

// errCode is the envelope's code, or "".
func (r response) errCode() string {
	e, _ := r.json["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func (r response) data() map[string]any {
	d, _ := r.json["data"].(map[string]any)
	return d
}

// call sends a request with a bearer token (if any) and a JSON body (a
// string is sent verbatim).
func (b *bundle) call(method, path, token string, body any, headers ...string) response {
	b.t.Helper()
	var rd io.Reader
	switch v := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(v)
	case []byte:
		rd = bytes.NewReader(v)
	default:
		j, err := json.Marshal(v)
		if err != nil {
			b.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, b.srv.URL+path, rd)
	if err != nil {
		b.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out := response{status: resp.StatusCode, header: resp.Header}
	out.body, _ = io.ReadAll(resp.Body)
	if b.seen != nil {
		b.seen(method, req.URL.Path, out)
	}
	if len(out.body) > 0 && !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/") { // /metrics and /docs are text
		if err := json.Unmarshal(out.body, &out.json); err != nil {
			b.t.Fatalf("%s %s: response is not JSON: %s", method, path, out.body)
		}
	}
	return out
}

// newContact is a valid create body.
func newContact(sourceID string) map[string]any {
	return map[string]any{
		"firstName": "John", "lastName": "Doe", "email": "john.doe@example.com",
		"phone": "555-123-4567", "company": "Acme Inc", "title": "Engineer",
		"address": map[string]any{"street": "1 Main St", "city": "Springfield", "state": "IL", "zipCode": "62701", "country": "USA"},
		"tags":    []string{"vip"}, "customFields": map[string]any{"tier": "gold"},
		"source": "api", "sourceId": sourceID,
	}
}

func (b *bundle) create(body map[string]any) map[string]any {
	b.t.Helper()
	r := b.call("POST", "/api/contacts", b.user, body)
	if r.status != 201 {
		b.t.Fatalf("create: %d %s", r.status, r.body)
	}
	return r.data()
}
