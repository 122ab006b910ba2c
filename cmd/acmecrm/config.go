package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/acmecrm/acmecrm/internal/auth"
	"github.com/acmecrm/acmecrm/internal/httpapi"
	"github.com/acmecrm/acmecrm/internal/kafka"
	"github.com/acmecrm/acmecrm/internal/ratelimit"
	"github.com/acmecrm/acmecrm/internal/simulator"
	"github.com/acmecrm/acmecrm/internal/telemetry"
	"github.com/acmecrm/acmecrm/internal/webhook"
)

// envVar documents one configuration variable. The table below is the single
// source of truth: parsing reads defaults from it and a test checks that
// .env.example lists every variable with the same default.
type envVar struct {
	Name    string
	Default string
	Doc     string
}

// The local run's demo account (the original's), refused elsewhere.
const (
	demoAdminUsername = "admin@acmecrm.com"
	demoAdminPassword = "admin123"
)

// defaultWebhookSecret is accepted only in development.
const defaultWebhookSecret = "dev-only-webhook-secret"

// defaultJWTSecret is accepted only in development (SPEC §5).
const defaultJWTSecret = "dev-only-insecure-jwt-secret-change-me"

var envVars = []envVar{
	{"APP_ENV", "production", "development | test | production. Development relaxes the JWT_SECRET check; `acmecrm dev` sets it."},
	{"PORT", "3000", "HTTP listen port."},
	{"HTTP_ADDR", "", "Full listen address (host:port, numeric port); overrides PORT when set."},
	{"LOG_LEVEL", "info", "debug | info | warn | error."},
	{"LOG_FORMAT", "json", "json | text."},
	{"DATABASE_URL", "", "PostgreSQL URL; when empty it is built from the POSTGRES_* variables."},
	{"POSTGRES_HOST", "localhost", "PostgreSQL host (when DATABASE_URL is empty)."},
	{"POSTGRES_PORT", "5432", "PostgreSQL port."},
	{"POSTGRES_USER", "postgres", "PostgreSQL user."},
	{"POSTGRES_PASSWORD", "", "PostgreSQL password."},
	{"POSTGRES_DB", "acmecrm", "PostgreSQL database."},
	{"POSTGRES_SSL", "false", "true to require TLS to PostgreSQL (sslmode=require)."},
	{"POSTGRES_MAX_CONNECTIONS", "20", "Connection pool size."},
	{"REDIS_URL", "", "Redis URL (redis:// or rediss://); when empty it is built from REDIS_HOST/PORT/PASSWORD."},
	{"REDIS_HOST", "localhost", "Redis host (when REDIS_URL is empty)."},
	{"REDIS_PORT", "6379", "Redis port."},
	{"REDIS_PASSWORD", "", "Redis password."},
	{"KAFKA_BROKERS", "localhost:9092", "Comma-separated Kafka seed brokers."},
	{"KAFKA_CLIENT_ID", "acmecrm-integration", "Kafka client id."},
	{"KAFKA_TLS", "false", "true to connect to Kafka over TLS."},
	{"KAFKA_SASL_MECHANISM", "", "Empty, plain, scram-sha-256 or scram-sha-512."},
	{"KAFKA_SASL_USERNAME", "", "SASL user name."},
	{"KAFKA_SASL_PASSWORD", "", "SASL password."},
	{"KAFKA_PARTITIONS", "6", "Partitions of the topics created at start-up."},
	{"REDIS_KEY_PREFIX", "acmecrm:", "Prefix of every Redis key (share one Redis between deployments)."},
	{"KAFKA_TOPIC_CONTACTS", "contacts", "Topic of the change events of API edits."},
	{"ADMIN_USERNAME", "", "First admin, created at start-up if missing (with ADMIN_PASSWORD)."},
	{"ADMIN_PASSWORD", "", "Password of ADMIN_USERNAME (at least 8 characters; never the demo password outside development)."},
	{"JWT_ISSUER", "acmecrm", "iss claim of issued tokens (checked on every request)."},
	{"JWT_AUDIENCE", "acmecrm-api", "aud claim of issued tokens (checked on every request)."},
	{"RATE_LIMIT_API", "600/1m", "Requests per authenticated user on /api/* (N/duration; bursts up to N)."},
	{"RATE_LIMIT_LOGIN", "10/1m", "Login attempts per client IP (an IPv6 client: per /64 network)."},
	{"RATE_LIMIT_PUBLIC", "300/1m", "Requests per client IP on other unauthenticated routes (and refused tokens)."},
	{"ACME_WEBHOOK_SECRET", defaultWebhookSecret, "Shared secret AcmeCRM signs webhooks with (whsec_<base64> for a Standard Webhooks secret). Must be set outside development."},
	{"ACME_WEBHOOK_PREVIOUS_SECRETS", "", "Comma-separated secrets still accepted during a rotation."},
	{"ACME_WEBHOOK_MAX_AGE", "300000", "Tolerance of the webhook timestamp in milliseconds, both directions."},
	{"WEBHOOK_MAX_BODY_BYTES", "1048576", "Largest webhook body (413 above)."},
	{"RATE_LIMIT_WEBHOOK", "3000/1s", "Webhooks per source IP and instance, in memory (generous: the CRM sends bursts)."},
	{"TRUSTED_PROXIES", "", "Comma-separated IPs and CIDR ranges of the proxies in front of the service; their X-Forwarded-For names the client the per-IP limits count (the rightmost address that is not a proxy). Empty: the connection's peer."},
	{"KAFKA_TOPIC_CONTACT_EVENTS", "contact-events", "Topic of the webhook events."},
	{"KAFKA_TOPIC_DLQ", "contact-events-dlq", "Dead-letter topic of events that failed every retry."},
	{"KAFKA_CONSUMER_GROUP", "contact-events-group", "Consumer group of the contact-events consumer."},
	{"KAFKA_SESSION_TIMEOUT", "45s", "Consumer group session timeout: how long a crashed consumer's partitions wait before others take them, 3s to 30m."},
	{"EVENT_MAX_RETRIES", "5", "Retries of a failing event (after the first attempt) before it is dead-lettered."},
	{"EVENT_RETENTION", "720h", "How long finished records are kept: webhooks processed or ignored, dead letters replayed, simulator deliveries ended. 1h to 87600h (whole seconds or a Go duration), or 0 to keep them for ever. The relay role prunes every 10 minutes; webhooks on their way, dead ones and dead letters not replayed are kept whatever their age."},
	{"INGEST_WRITERS", "2", "Webhook batches committing at once."},
	{"INGEST_MAX_BATCH", "512", "Most webhooks in one coalesced insert."},
	{"WEBHOOK_SIMULATOR_TARGET_URL", "", "Where the simulator sends when a request names no target, and the auto-trigger's target; empty means http://localhost:$PORT/api/webhooks (this service)."},
	{"WEBHOOK_SIMULATOR_ALLOWED_TARGETS", "", "Comma-separated URL prefixes the simulator may send to; empty means this service's own receiver (http://127.0.0.1:$PORT/api/webhooks, http://localhost:$PORT/api/webhooks). Private and metadata addresses are refused unless a prefix names them."},
	{"WEBHOOK_SIMULATOR_AUTO_TRIGGER", "false", "true: after an API create/update/delete of an acmecrm contact, the simulator sends the matching AcmeCRM webhook."},
	{"WEBHOOK_SIMULATOR_MAX_RETRIES", "3", "Retries of a failed simulator delivery after its first attempt."},
	{"WEBHOOK_SIMULATOR_RETRY_INITIAL_DELAY", "1000", "First retry delay in milliseconds; doubles per retry (with jitter)."},
	{"WEBHOOK_SIMULATOR_RETRY_MAX_DELAY", "60000", "Longest retry delay in milliseconds."},
	{"WEBHOOK_SIMULATOR_TIMEOUT", "10000", "Timeout of one simulator delivery attempt in milliseconds."},
	{"JWT_SECRET", defaultJWTSecret, "HS256 signing secret, at least 32 bytes outside development."},
	{"JWT_EXPIRATION", "1h", "Token lifetime: seconds (3600) or a Go duration (1h), 1m to 8760h."},
	{"MAX_BODY_BYTES", "1048576", "Largest request body accepted by the REST API (413 above)."},
	{"REQUEST_TIMEOUT", "30s", "Deadline of each HTTP request (504 after it), 100ms to 1h."},
	{"SEARCH_CONCURRENCY", "0", "Contact searches (and the other lists that read the whole table: pages from row 10,000 on, deleted contacts sorted by a name, email or company) running at once per instance, each on one database core (no parallel workers), each user's one at a time; each waits up to 2 s for a turn, then gets 503. 0: half this process's cores, at least one. Raise it when PostgreSQL has more cores than this process."},
	{"SHUTDOWN_TIMEOUT", "20s", "How long a graceful shutdown waits for in-flight work, 1s to 1h."},
	{"METRICS_ENABLED", "true", "Serve Prometheus metrics at GET /metrics (on every process, whatever its roles)."},
	{"OTEL_EXPORTER_OTLP_ENDPOINT", "", "OTLP/HTTP collector base URL (e.g. http://otel-collector:4318); spans go to <it>/v1/traces. Tracing is off when this and OTEL_EXPORTER_OTLP_TRACES_ENDPOINT are empty."},
	{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "", "Full OTLP/HTTP traces URL; overrides OTEL_EXPORTER_OTLP_ENDPOINT."},
	{"OTEL_EXPORTER_OTLP_HEADERS", "", "Headers sent to the collector: comma-separated key=value (e.g. an API key)."},
	{"OTEL_SERVICE_NAME", "acmecrm", "service.name of the spans."},
	{"OTEL_TRACES_SAMPLER_ARG", "1", "Share of new traces sampled, 0–1 (a caller's sampled traceparent is always followed)."},
	{"OTEL_BSP_SCHEDULE_DELAY", "5000", "Milliseconds spans wait to be exported in one batch."},
	{"GOGC", "400", "Go GC target percentage (Go's own default is 100); the heap is small, so trading memory for CPU pays."},
}

// minJWTSecretBytes is the shortest secret accepted outside development:
// HS256's key should be at least as long as its 256-bit output.
const minJWTSecretBytes = 32

// config is the parsed, validated configuration.
type config struct {
	Env             string
	Addr            string
	LogLevel        slog.Level
	LogFormat       string
	DatabaseURL     string
	PostgresMaxConn int
	RedisURL        string
	Kafka           kafka.Config
	KafkaPartitions int
	RedisKeyPrefix  string
	ContactsTopic   string
	AdminUsername   string
	AdminPassword   string
	JWTSecret       string
	JWTIssuer       string
	JWTAudience     string
	JWTExpiration   time.Duration
	Limits          httpapi.Limits
	TrustedProxies  httpapi.TrustedProxies
	MaxBodyBytes    int64
	RequestTimeout  time.Duration
	Searches        int // 0: half the cores
	ShutdownTimeout time.Duration
	GCPercent       int
	Metrics         bool
	Tracing         telemetry.TracingConfig
	WebhookSecrets  []webhook.Secret
	WebhookMaxAge   time.Duration
	WebhookMaxBody  int64
	EventsTopic     string
	DLQTopic        string
	ConsumerGroup   string
	MaxRetries      int
	SessionTimeout  time.Duration
	Retention       time.Duration // 0: keep for ever
	IngestWriters   int
	IngestMaxBatch  int
	Simulator       simulatorConfig
}

// simulatorConfig is the simulator's part of the configuration. Empty
// TargetURL and AllowedTargets default to this service's own receiver,
// whose port is known only once it listens.
type simulatorConfig struct {
	TargetURL      string
	AllowedTargets string
	AutoTrigger    bool
	Retry          simulator.RetryPolicy
	Timeout        time.Duration
}

// resolve fills the defaults for a service listening on port and checks
// that the target is allowed.
func (c simulatorConfig) resolve(port int) (target string, targets *simulator.Targets, err error) {
	own := func(host string) string { return "http://" + host + ":" + strconv.Itoa(port) + "/api/webhooks" }
	allowed := c.AllowedTargets
	if allowed == "" {
		allowed = own("127.0.0.1") + "," + own("localhost")
	}
	if targets, err = simulator.ParseTargets(allowed); err != nil {
		return "", nil, fmt.Errorf("WEBHOOK_SIMULATOR_ALLOWED_TARGETS: %w", err)
	}
	target = c.TargetURL
	if target == "" {
		target = own("localhost")
	}
	if target, err = targets.Check(target); err != nil {
		return "", nil, fmt.Errorf("WEBHOOK_SIMULATOR_TARGET_URL is not one of WEBHOOK_SIMULATOR_ALLOWED_TARGETS")
	}
	return target, targets, nil
}

// configError lists every problem found, one per line.
type configError []string

func (e configError) Error() string {
	return "invalid configuration:\n  " + strings.Join(e, "\n  ")
}

// envReader reads variables with their defaults and collects problems
// instead of stopping at the first.
type envReader struct {
	getenv   func(string) string
	problems configError
}

func (r *envReader) str(name string) string {
	if v := strings.TrimSpace(r.getenv(name)); v != "" {
		return v
	}
	for _, v := range envVars {
		if v.Name == name {
			return v.Default
		}
	}
	panic("config: undocumented variable " + name) // a programming error, caught by tests
}

func (r *envReader) fail(name, format string, args ...any) {
	r.problems = append(r.problems, name+": "+fmt.Sprintf(format, args...))
}

func (r *envReader) oneOf(name string, allowed ...string) string {
	v := strings.ToLower(r.str(name))
	if !slices.Contains(allowed, v) {
		r.fail(name, "%q is not one of %s", v, strings.Join(allowed, ", "))
	}
	return v
}

func (r *envReader) intRange(name string, min, max int) int {
	s := r.str(name)
	n, err := strconv.Atoi(s)
	if err != nil || n < min || n > max {
		r.fail(name, "%q is not a whole number between %d and %d", s, min, max)
	}
	return n
}

func (r *envReader) boolean(name string) bool {
	s := r.str(name)
	b, err := strconv.ParseBool(s)
	if err != nil {
		r.fail(name, "%q is not true or false", s)
	}
	return b
}

// duration accepts a Go duration ("1h", "300ms") or whole seconds
// ("3600") between min and max. The bounds keep a value from wrapping
// around (10000000000 seconds is more than a time.Duration holds) and from
// being useless (a request deadline of 1ns, a token that expires as it is
// issued).
func (r *envReader) duration(name string, min, max time.Duration) time.Duration {
	s := r.str(name)
	d, err := time.ParseDuration(s)
	if n, aerr := strconv.ParseInt(s, 10, 64); aerr == nil {
		d, err = time.Duration(n)*time.Second, nil
		if n > int64(max/time.Second) || n < 0 {
			d = max + 1
		}
	}
	if err != nil || d < min || d > max {
		r.fail(name, "%q is not a duration between %s and %s (whole seconds or a Go duration such as 1h)", s, fmtDuration(min), fmtDuration(max))
	}
	return d
}

// fmtDuration writes a bound the way a person would set it: 1h, not 1h0m0s.
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// topic reads a Kafka topic name, which brokers restrict to 1–249 ASCII
// letters, digits, '.', '_' and '-' (and not "." or "..").
func (r *envReader) topic(name string) string {
	s := r.str(name)
	ok := len(s) <= 249 && s != "." && s != ".."
	for _, c := range s {
		ok = ok && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-')
	}
	if !ok {
		r.fail(name, "%q is not a Kafka topic name (at most 249 of a-z A-Z 0-9 . _ -)", s)
	}
	return s
}

func (r *envReader) policy(name, policy string) ratelimit.Policy {
	p, err := ratelimit.ParsePolicy(policy, r.str(name))
	if err != nil {
		r.fail(name, "%v", err)
	}
	return p
}

// url checks a connection URL with the client library that will use it.
// The value is never echoed: URLs carry passwords.
func (r *envReader) url(name string, parse func(string) error, what string) string {
	s := r.str(name)
	if err := parse(s); err != nil {
		r.fail(name, "not a valid %s URL", what)
	}
	return s
}

func parsePostgresURL(s string) error {
	if !strings.HasPrefix(s, "postgres://") && !strings.HasPrefix(s, "postgresql://") {
		return fmt.Errorf("scheme")
	}
	_, err := pgx.ParseConfig(s)
	return err
}

func parseRedisURL(s string) error {
	_, err := redis.ParseURL(s)
	return err
}

// loadConfig reads and validates the whole configuration. It returns every
// problem at once as a configError.
func loadConfig(getenv func(string) string) (config, error) {
	r := &envReader{getenv: getenv}
	var c config
	c.Env = r.oneOf("APP_ENV", "development", "test", "production")
	c.Addr = r.str("HTTP_ADDR")
	if c.Addr == "" {
		c.Addr = ":" + strconv.Itoa(r.intRange("PORT", 0, 65535))
	} else if _, port, err := net.SplitHostPort(c.Addr); err != nil {
		r.fail("HTTP_ADDR", "%q is not host:port (e.g. 127.0.0.1:3000 or :3000)", c.Addr)
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		r.fail("HTTP_ADDR", "%q: the port must be a number between 0 and 65535", c.Addr)
	}
	switch lvl := r.oneOf("LOG_LEVEL", "debug", "info", "warn", "error"); lvl {
	case "debug":
		c.LogLevel = slog.LevelDebug
	case "warn":
		c.LogLevel = slog.LevelWarn
	case "error":
		c.LogLevel = slog.LevelError
	}
	c.LogFormat = r.oneOf("LOG_FORMAT", "json", "text")

	c.DatabaseURL, c.PostgresMaxConn = r.database()

	if r.getenv("REDIS_URL") != "" {
		c.RedisURL = r.url("REDIS_URL", parseRedisURL, "redis://, rediss:// or unix://")
	} else {
		u := url.URL{Scheme: "redis", Host: r.str("REDIS_HOST") + ":" + strconv.Itoa(r.intRange("REDIS_PORT", 1, 65535)), Path: "/0"}
		if pw := r.getenv("REDIS_PASSWORD"); pw != "" {
			u.User = url.UserPassword("", pw)
		}
		c.RedisURL = u.String()
	}

	for _, b := range strings.Split(r.str("KAFKA_BROKERS"), ",") {
		if b = strings.TrimSpace(b); b == "" {
			continue
		}
		if host, port, err := net.SplitHostPort(b); err != nil || host == "" || port == "" {
			r.fail("KAFKA_BROKERS", "%q is not host:port", b)
			continue
		}
		c.Kafka.Brokers = append(c.Kafka.Brokers, b)
	}
	if len(c.Kafka.Brokers) == 0 {
		r.fail("KAFKA_BROKERS", "no broker given")
	}
	c.Kafka.ClientID = r.str("KAFKA_CLIENT_ID")
	c.Kafka.TLS = r.boolean("KAFKA_TLS")
	if m := r.getenv("KAFKA_SASL_MECHANISM"); m != "" {
		c.Kafka.SASLMechanism = r.oneOf("KAFKA_SASL_MECHANISM", kafka.SASLMechanisms...)
		c.Kafka.SASLUsername = r.str("KAFKA_SASL_USERNAME")
		c.Kafka.SASLPassword = r.str("KAFKA_SASL_PASSWORD")
		if c.Kafka.SASLUsername == "" {
			r.fail("KAFKA_SASL_USERNAME", "required when KAFKA_SASL_MECHANISM is set")
		}
	}
	c.KafkaPartitions = r.intRange("KAFKA_PARTITIONS", 1, 1000)

	c.JWTSecret = r.str("JWT_SECRET")
	if c.Env != "development" {
		switch {
		case c.JWTSecret == defaultJWTSecret:
			r.fail("JWT_SECRET", "the built-in development secret cannot be used when APP_ENV=%s; set a random secret of at least %d bytes", c.Env, minJWTSecretBytes)
		case len(c.JWTSecret) < minJWTSecretBytes:
			r.fail("JWT_SECRET", "must be at least %d bytes when APP_ENV=%s (got %d)", minJWTSecretBytes, c.Env, len(c.JWTSecret))
		}
	}
	c.JWTExpiration = r.duration("JWT_EXPIRATION", time.Minute, 365*24*time.Hour)
	c.JWTIssuer = r.str("JWT_ISSUER")
	c.JWTAudience = r.str("JWT_AUDIENCE")
	c.RedisKeyPrefix = r.str("REDIS_KEY_PREFIX")
	c.AdminUsername, c.AdminPassword = r.str("ADMIN_USERNAME"), r.str("ADMIN_PASSWORD")
	switch {
	case (c.AdminUsername == "") != (c.AdminPassword == ""):
		r.fail("ADMIN_PASSWORD", "ADMIN_USERNAME and ADMIN_PASSWORD must be set together")
	case c.AdminPassword != "" && len(c.AdminPassword) < auth.MinPasswordLength:
		r.fail("ADMIN_PASSWORD", "must be at least %d characters", auth.MinPasswordLength)
	case len(c.AdminPassword) > auth.MaxPasswordBytes:
		r.fail("ADMIN_PASSWORD", "must be at most %d bytes (bcrypt's limit)", auth.MaxPasswordBytes)
	case c.AdminPassword == demoAdminPassword && c.Env != "development":
		r.fail("ADMIN_PASSWORD", "the demo password cannot be used when APP_ENV=%s", c.Env)
	}
	if c.AdminUsername != "" {
		if err := auth.CheckUsername(c.AdminUsername); err != nil {
			r.fail("ADMIN_USERNAME", "%v", err)
		}
	}
	c.Limits.API = r.policy("RATE_LIMIT_API", "api")
	c.Limits.Login = r.policy("RATE_LIMIT_LOGIN", "login")
	c.Limits.Public = r.policy("RATE_LIMIT_PUBLIC", "public")
	c.Limits.Webhook = r.policy("RATE_LIMIT_WEBHOOK", "webhook")
	proxies, err := httpapi.ParseTrustedProxies(r.str("TRUSTED_PROXIES"))
	if err != nil {
		r.fail("TRUSTED_PROXIES", "%v", err)
	}
	c.TrustedProxies = proxies
	secrets, err := webhook.ParseSecrets(r.str("ACME_WEBHOOK_SECRET"), r.str("ACME_WEBHOOK_PREVIOUS_SECRETS"))
	if err != nil {
		r.fail("ACME_WEBHOOK_SECRET", "%v", err)
	}
	c.WebhookSecrets = secrets
	if c.Env != "development" && r.str("ACME_WEBHOOK_SECRET") == defaultWebhookSecret {
		r.fail("ACME_WEBHOOK_SECRET", "the built-in development secret cannot be used when APP_ENV=%s", c.Env)
	}
	c.WebhookMaxAge = time.Duration(r.intRange("ACME_WEBHOOK_MAX_AGE", 1000, 86400000)) * time.Millisecond
	c.WebhookMaxBody = int64(r.intRange("WEBHOOK_MAX_BODY_BYTES", 1024, 64<<20))
	c.EventsTopic = r.topic("KAFKA_TOPIC_CONTACT_EVENTS")
	c.DLQTopic = r.topic("KAFKA_TOPIC_DLQ")
	c.ContactsTopic = r.topic("KAFKA_TOPIC_CONTACTS")
	switch {
	case c.EventsTopic == c.DLQTopic:
		r.fail("KAFKA_TOPIC_DLQ", "must differ from KAFKA_TOPIC_CONTACT_EVENTS (%q): dead letters would be consumed again", c.EventsTopic)
	case c.ContactsTopic == c.EventsTopic:
		r.fail("KAFKA_TOPIC_CONTACTS", "must differ from KAFKA_TOPIC_CONTACT_EVENTS (%q): the consumer would read the API's change events as CRM events", c.EventsTopic)
	case c.ContactsTopic == c.DLQTopic:
		r.fail("KAFKA_TOPIC_CONTACTS", "must differ from KAFKA_TOPIC_DLQ (%q)", c.DLQTopic)
	}
	c.ConsumerGroup = r.str("KAFKA_CONSUMER_GROUP")
	c.MaxRetries = r.intRange("EVENT_MAX_RETRIES", 0, 100)
	c.SessionTimeout = r.duration("KAFKA_SESSION_TIMEOUT", 3*time.Second, 30*time.Minute)
	if r.str("EVENT_RETENTION") != "0" {
		c.Retention = r.duration("EVENT_RETENTION", time.Hour, 87600*time.Hour)
	}
	c.IngestWriters = r.intRange("INGEST_WRITERS", 1, 64)
	c.Searches = r.intRange("SEARCH_CONCURRENCY", 0, 1024)
	c.IngestMaxBatch = r.intRange("INGEST_MAX_BATCH", 1, 10000)
	c.Simulator = r.simulator()
	c.MaxBodyBytes = int64(r.intRange("MAX_BODY_BYTES", 1024, 1<<30))
	c.RequestTimeout = r.duration("REQUEST_TIMEOUT", 100*time.Millisecond, time.Hour)
	c.ShutdownTimeout = r.duration("SHUTDOWN_TIMEOUT", time.Second, time.Hour)
	c.GCPercent = r.intRange("GOGC", 10, 10000)
	c.Metrics = r.boolean("METRICS_ENABLED")
	c.Tracing = r.tracing()

	if len(r.problems) > 0 {
		return config{}, r.problems
	}
	return c, nil
}

// simulator reads the WEBHOOK_SIMULATOR_* variables.
func (r *envReader) simulator() simulatorConfig {
	ms := func(name string, min, max int) time.Duration {
		return time.Duration(r.intRange(name, min, max)) * time.Millisecond
	}
	c := simulatorConfig{
		TargetURL:      r.str("WEBHOOK_SIMULATOR_TARGET_URL"),
		AllowedTargets: r.str("WEBHOOK_SIMULATOR_ALLOWED_TARGETS"),
		AutoTrigger:    r.boolean("WEBHOOK_SIMULATOR_AUTO_TRIGGER"),
		Retry: simulator.RetryPolicy{
			MaxRetries:   r.intRange("WEBHOOK_SIMULATOR_MAX_RETRIES", 0, 100),
			InitialDelay: ms("WEBHOOK_SIMULATOR_RETRY_INITIAL_DELAY", 1, 3600000),
			MaxDelay:     ms("WEBHOOK_SIMULATOR_RETRY_MAX_DELAY", 1, 86400000),
		},
		Timeout: ms("WEBHOOK_SIMULATOR_TIMEOUT", 100, 600000),
	}
	if c.Retry.MaxDelay < c.Retry.InitialDelay {
		r.fail("WEBHOOK_SIMULATOR_RETRY_MAX_DELAY", "must not be less than WEBHOOK_SIMULATOR_RETRY_INITIAL_DELAY")
	}
	if c.AllowedTargets != "" {
		if _, err := simulator.ParseTargets(c.AllowedTargets); err != nil {
			r.fail("WEBHOOK_SIMULATOR_ALLOWED_TARGETS", "%v", err)
		}
	}
	if c.TargetURL != "" {
		if u, err := url.Parse(c.TargetURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			r.fail("WEBHOOK_SIMULATOR_TARGET_URL", "not an http(s) URL")
		}
	}
	return c
}

// tracing reads the OpenTelemetry variables (the standard OTEL_* names).
func (r *envReader) tracing() telemetry.TracingConfig {
	c := telemetry.TracingConfig{ServiceName: r.str("OTEL_SERVICE_NAME"), Version: version}
	c.TracesURL = r.str("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	if c.TracesURL == "" {
		if base := r.str("OTEL_EXPORTER_OTLP_ENDPOINT"); base != "" {
			c.TracesURL = strings.TrimRight(base, "/") + "/v1/traces"
		}
	}
	if c.TracesURL != "" {
		if u, err := url.Parse(c.TracesURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			r.fail("OTEL_EXPORTER_OTLP_ENDPOINT", "not an http(s) URL")
		}
	}
	if h := r.str("OTEL_EXPORTER_OTLP_HEADERS"); h != "" {
		c.Headers = map[string]string{}
		for _, kv := range strings.Split(h, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || strings.TrimSpace(k) == "" {
				r.fail("OTEL_EXPORTER_OTLP_HEADERS", "expected key=value pairs separated by commas")
				break
			}
			c.Headers[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	ratio, err := strconv.ParseFloat(r.str("OTEL_TRACES_SAMPLER_ARG"), 64)
	if err != nil || !(ratio >= 0 && ratio <= 1) { // NaN fails both
		r.fail("OTEL_TRACES_SAMPLER_ARG", "not a number between 0 and 1")
	}
	c.SampleRatio = ratio
	c.BatchDelay = time.Duration(r.intRange("OTEL_BSP_SCHEDULE_DELAY", 1, 600000)) * time.Millisecond
	return c
}

// database reads DATABASE_URL, or builds it from the POSTGRES_* variables.
func (r *envReader) database() (dbURL string, maxConns int) {
	if r.getenv("DATABASE_URL") != "" {
		dbURL = r.url("DATABASE_URL", parsePostgresURL, "postgres://")
	} else {
		u := url.URL{
			Scheme: "postgres",
			User:   url.UserPassword(r.str("POSTGRES_USER"), r.str("POSTGRES_PASSWORD")),
			Host:   r.str("POSTGRES_HOST") + ":" + strconv.Itoa(r.intRange("POSTGRES_PORT", 1, 65535)),
			Path:   "/" + r.str("POSTGRES_DB"),
		}
		if r.getenv("POSTGRES_PASSWORD") == "" {
			u.User = url.User(r.str("POSTGRES_USER"))
		}
		mode := "disable"
		if r.boolean("POSTGRES_SSL") {
			mode = "require"
		}
		u.RawQuery = "sslmode=" + mode
		dbURL = u.String()
	}
	return dbURL, r.intRange("POSTGRES_MAX_CONNECTIONS", 1, 1000)
}

// loadDatabaseConfig reads only what database commands (migrate) need, so
// they run where the service's other settings are absent.
func loadDatabaseConfig(getenv func(string) string) (dbURL string, err error) {
	r := &envReader{getenv: getenv}
	dbURL, _ = r.database()
	if len(r.problems) > 0 {
		return "", r.problems
	}
	return dbURL, nil
}
