package main

import (
	"bufio"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// validEnv is a production configuration that passes every check.
func validEnv() map[string]string {
	return map[string]string{
		"JWT_SECRET":          strings.Repeat("s", 32),
		"ACME_WEBHOOK_SECRET": "a-real-webhook-secret",
		"DATABASE_URL":        "postgres://u:p@db:5432/acmecrm",
		"REDIS_URL":           "redis://cache:6379/0",
		"KAFKA_BROKERS":       "k1:9092,k2:9092",
	}
}

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	c, err := loadConfig(env(map[string]string{"APP_ENV": "development"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != ":3000" || c.JWTExpiration != time.Hour || c.MaxBodyBytes != 1<<20 || c.KafkaPartitions != 6 || c.Retention != 30*24*time.Hour {
		t.Errorf("defaults: %+v", c)
	}
	if c.DatabaseURL != "postgres://postgres@localhost:5432/acmecrm?sslmode=disable" {
		t.Errorf("DatabaseURL = %q", c.DatabaseURL)
	}
	if c.RedisURL != "redis://localhost:6379/0" {
		t.Errorf("RedisURL = %q", c.RedisURL)
	}
}

func TestConfigFromParts(t *testing.T) {
	t.Parallel()
	e := validEnv()
	delete(e, "DATABASE_URL")
	delete(e, "REDIS_URL")
	for k, v := range map[string]string{
		"POSTGRES_HOST": "db.internal", "POSTGRES_PORT": "6543", "POSTGRES_USER": "svc", "POSTGRES_PASSWORD": "p@ss/word",
		"POSTGRES_DB": "crm", "POSTGRES_SSL": "true", "REDIS_HOST": "r.internal", "REDIS_PORT": "6390", "REDIS_PASSWORD": "rpw",
		"JWT_EXPIRATION": "3600", "PORT": "8080",
	} {
		e[k] = v
	}
	c, err := loadConfig(env(e))
	if err != nil {
		t.Fatal(err)
	}
	if c.DatabaseURL != "postgres://svc:p%40ss%2Fword@db.internal:6543/crm?sslmode=require" {
		t.Errorf("DatabaseURL = %q", c.DatabaseURL)
	}
	if c.RedisURL != "redis://:rpw@r.internal:6390/0" {
		t.Errorf("RedisURL = %q", c.RedisURL)
	}
	if c.JWTExpiration != time.Hour || c.Addr != ":8080" {
		t.Errorf("JWTExpiration = %s, Addr = %s", c.JWTExpiration, c.Addr)
	}
	if len(c.Kafka.Brokers) != 2 {
		t.Errorf("brokers = %v", c.Kafka.Brokers)
	}
}

// Every problem is reported at once, one line each, and passwords in bad
// URLs are never echoed.
func TestConfigReportsEveryProblem(t *testing.T) {
	t.Parallel()
	_, err := loadConfig(env(map[string]string{
		"APP_ENV":                  "staging",
		"PORT":                     "70000",
		"DATABASE_URL":             "mysql://root:topsecret@db/x",
		"KAFKA_BROKERS":            "no-port",
		"KAFKA_SASL_MECHANISM":     "kerberos",
		"JWT_EXPIRATION":           "forever",
		"LOG_LEVEL":                "chatty",
		"POSTGRES_MAX_CONNECTIONS": "0",
	}))
	var ce configError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want configError", err)
	}
	for _, name := range []string{"APP_ENV", "PORT", "DATABASE_URL", "KAFKA_BROKERS", "KAFKA_SASL_MECHANISM", "JWT_EXPIRATION", "LOG_LEVEL", "POSTGRES_MAX_CONNECTIONS", "JWT_SECRET"} {
		found := false
		for _, line := range ce {
			if strings.HasPrefix(line, name+": ") {
				found = true
			}
		}
		if !found {
			t.Errorf("no problem reported for %s in:\n%v", name, err)
		}
	}
	if strings.Contains(err.Error(), "topsecret") {
		t.Errorf("password echoed: %v", err)
	}
	if got := strings.Count(err.Error(), "\n"); got != len(ce) {
		t.Errorf("want one line per problem, got %d lines for %d problems", got, len(ce))
	}
}

func TestJWTSecretRules(t *testing.T) {
	t.Parallel()
	cases := []struct {
		appEnv, secret string
		ok             bool
	}{
		{"development", "", true}, // the built-in default is fine for the local run
		{"production", "", false}, // …and refused everywhere else
		{"test", "", false},
		{"production", defaultJWTSecret, false},
		{"production", "short", false},
		{"production", strings.Repeat("x", 31), false},
		{"production", strings.Repeat("x", 32), true},
	}
	for _, c := range cases {
		e := validEnv()
		e["APP_ENV"], e["JWT_SECRET"] = c.appEnv, c.secret
		_, err := loadConfig(env(e))
		if (err == nil) != c.ok {
			t.Errorf("APP_ENV=%s JWT_SECRET=%q: err = %v, want ok=%v", c.appEnv, c.secret, err, c.ok)
		}
	}
}

func TestDatabaseOnlyConfigIgnoresOtherSettings(t *testing.T) {
	t.Parallel()
	// migrate must work where the service's secrets are not available.
	u, err := loadDatabaseConfig(env(map[string]string{"DATABASE_URL": "postgres://x@db/acmecrm", "JWT_SECRET": "short"}))
	if err != nil || u != "postgres://x@db/acmecrm" {
		t.Fatalf("loadDatabaseConfig = %q, %v", u, err)
	}
}

// .env.example documents every variable with the default the code uses,
// and nothing the code does not read.
func TestEnvExampleMatchesConfig(t *testing.T) {
	t.Parallel()
	f, err := os.Open("../../.env.example")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	documented := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		line = strings.TrimPrefix(line, "# ")
		name, value, ok := strings.Cut(line, "=")
		if !ok || name == "" || strings.ContainsAny(name, " #") || strings.ToUpper(name) != name {
			continue
		}
		documented[name] = value
	}
	for _, v := range envVars {
		got, ok := documented[v.Name]
		if !ok {
			t.Errorf(".env.example lacks %s", v.Name)
			continue
		}
		if got != v.Default {
			t.Errorf(".env.example: %s=%q, code default %q", v.Name, got, v.Default)
		}
		delete(documented, v.Name)
	}
	for name := range documented {
		t.Errorf(".env.example documents %s, which the code does not read", name)
	}
}

func TestWebhookSecretRules(t *testing.T) {
	t.Parallel()
	e := validEnv()
	delete(e, "ACME_WEBHOOK_SECRET") // the built-in development secret
	if _, err := loadConfig(env(e)); err == nil || !strings.Contains(err.Error(), "ACME_WEBHOOK_SECRET") {
		t.Errorf("default webhook secret in production: %v", err)
	}
	e["APP_ENV"] = "development"
	if _, err := loadConfig(env(e)); err != nil {
		t.Errorf("default webhook secret in development: %v", err)
	}
	e["ACME_WEBHOOK_SECRET"], e["ACME_WEBHOOK_PREVIOUS_SECRETS"] = "whsec_not*base64", ""
	if _, err := loadConfig(env(e)); err == nil {
		t.Error("a malformed whsec_ secret was accepted")
	}
	e["ACME_WEBHOOK_SECRET"], e["ACME_WEBHOOK_PREVIOUS_SECRETS"] = "new", "old1, old2"
	c, err := loadConfig(env(e))
	if err != nil || len(c.WebhookSecrets) != 3 || c.WebhookSecrets[2].ID != "previous-2" || string(c.WebhookSecrets[2].Key) != "old2" {
		t.Errorf("rotation secrets: %+v %v", c.WebhookSecrets, err)
	}
}

func TestTraceSampleRatio(t *testing.T) {
	t.Parallel()
	for v, ok := range map[string]bool{"0": true, "0.25": true, "1": true, "1.5": false, "-0.1": false, "NaN": false, "Inf": false, "half": false} {
		e := validEnv()
		e["OTEL_TRACES_SAMPLER_ARG"] = v
		if _, err := loadConfig(env(e)); (err == nil) != ok {
			t.Errorf("OTEL_TRACES_SAMPLER_ARG=%s: %v", v, err)
		}
	}
}

// The first admin's name and password are checked before anything starts:
// a start-up that could not create the admin must not get that far.
func TestAdminAccountRules(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ user, password, wantIn string }{
		{"root@example.com", "a-strong-password", ""},
		{"root@example.com", strings.Repeat("p", 72), ""},
		{"root@example.com", strings.Repeat("p", 73), "ADMIN_PASSWORD"},
		{"root@example.com", "short", "ADMIN_PASSWORD"},
		{"root\x01@example.com", "a-strong-password", "ADMIN_USERNAME"},
		{"root @example.com", "a-strong-password", "ADMIN_USERNAME"},
		{"root\u200b@example.com", "a-strong-password", "ADMIN_USERNAME"},
		{strings.Repeat("r", 256), "a-strong-password", "ADMIN_USERNAME"},
		{"", "a-strong-password", "ADMIN_PASSWORD"},
	} {
		e := validEnv()
		e["ADMIN_USERNAME"], e["ADMIN_PASSWORD"] = c.user, c.password
		_, err := loadConfig(env(e))
		if (c.wantIn == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.wantIn)) {
			t.Errorf("ADMIN_USERNAME %q, ADMIN_PASSWORD of %d bytes: %v, want a problem with %q", c.user, len(c.password), err, c.wantIn)
		}
	}
}

// docs/CONFIGURATION.md documents every variable the code reads.
func TestConfigurationReferenceIsComplete(t *testing.T) {
	b, err := os.ReadFile("../../docs/CONFIGURATION.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range envVars {
		if !strings.Contains(string(b), "`"+v.Name+"`") {
			t.Errorf("docs/CONFIGURATION.md does not document %s", v.Name)
		}
	}
}

// Values that parse but cannot work are refused at start-up, each with its
// own line, instead of failing later (or never): a duration in seconds too
// large for time.Duration used to wrap around to a negative one, a 1ns
// request deadline answered every request 504, and a topic shared by two
// roles made the consumer read the API's change events as CRM events.
func TestConfigRefusesValuesThatCannotWork(t *testing.T) {
	t.Parallel()
	bad := []struct{ name, value, says string }{
		{"JWT_EXPIRATION", "10000000000", "between 1m and 8760h"}, // wrapped to −2,346,317 h
		{"JWT_EXPIRATION", "9223372036", "between 1m and 8760h"},
		{"JWT_EXPIRATION", "1ns", "between 1m and 8760h"},
		{"JWT_EXPIRATION", "59", "between 1m and 8760h"},
		{"JWT_EXPIRATION", "-3600", "between 1m and 8760h"},
		{"REQUEST_TIMEOUT", "10000000000", "between 100ms and 1h"},
		{"REQUEST_TIMEOUT", "1ns", "between 100ms and 1h"},
		{"SHUTDOWN_TIMEOUT", "1ns", "between 1s and 1h"},
		{"SHUTDOWN_TIMEOUT", "0", "between 1s and 1h"},
		{"KAFKA_SESSION_TIMEOUT", "1ms", "between 3s and 30m"}, // franz-go refuses it after the servers have started
		{"KAFKA_SESSION_TIMEOUT", "31m", "between 3s and 30m"},
		{"HTTP_ADDR", "nonsense", "not host:port"},
		{"HTTP_ADDR", "127.0.0.1:99999", "between 0 and 65535"},
		{"HTTP_ADDR", "127.0.0.1:http", "between 0 and 65535"},
		{"KAFKA_TOPIC_DLQ", "bad topic!", "not a Kafka topic name"},
		{"KAFKA_TOPIC_CONTACTS", "..", "not a Kafka topic name"},
		{"KAFKA_TOPIC_CONTACT_EVENTS", strings.Repeat("t", 250), "not a Kafka topic name"},
		{"KAFKA_TOPIC_CONTACTS", "contact-events", "must differ from KAFKA_TOPIC_CONTACT_EVENTS"},
		{"KAFKA_TOPIC_DLQ", "contact-events", "must differ from KAFKA_TOPIC_CONTACT_EVENTS"},
		{"KAFKA_TOPIC_CONTACTS", "contact-events-dlq", "must differ from KAFKA_TOPIC_DLQ"},
		{"RATE_LIMIT_WEBHOOK", "99999999999999/1ns", "more than 1,000,000 requests a second"},
		{"TRUSTED_PROXIES", "10.0.0.0/8,lb.internal", "not an IP address or a CIDR range"},
		{"EVENT_RETENTION", "59m", "between 1h and 87600h"},
		{"EVENT_RETENTION", "-720h", "between 1h and 87600h"},
		{"EVENT_RETENTION", "off", "between 1h and 87600h"},
	}
	for _, c := range bad {
		e := validEnv()
		e[c.name] = c.value
		_, err := loadConfig(env(e))
		var ce configError
		if !errors.As(err, &ce) || len(ce) != 1 || !strings.HasPrefix(ce[0], c.name+": ") || !strings.Contains(ce[0], c.says) {
			t.Errorf("%s=%q: err = %v, want one line for %s saying %q", c.name, c.value, err, c.name, c.says)
		}
	}
	good := map[string]string{
		"JWT_EXPIRATION": "60", "REQUEST_TIMEOUT": "100ms", "SHUTDOWN_TIMEOUT": "1h", "KAFKA_SESSION_TIMEOUT": "6s",
		"HTTP_ADDR": "[::1]:0", "KAFKA_TOPIC_CONTACTS": "crm.contacts_v2", "RATE_LIMIT_WEBHOOK": "1000000/1s",
		"TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.7", "EVENT_RETENTION": "0",
	}
	e := validEnv()
	for k, v := range good {
		e[k] = v
	}
	c, err := loadConfig(env(e))
	if err != nil {
		t.Fatalf("valid values refused: %v", err)
	}
	if c.JWTExpiration != time.Minute || c.RequestTimeout != 100*time.Millisecond || c.ShutdownTimeout != time.Hour || c.SessionTimeout != 6*time.Second {
		t.Errorf("durations = %s %s %s %s", c.JWTExpiration, c.RequestTimeout, c.ShutdownTimeout, c.SessionTimeout)
	}
	if len(c.TrustedProxies) != 2 {
		t.Errorf("trusted proxies = %v", c.TrustedProxies)
	}
	if c.Retention != 0 {
		t.Errorf("EVENT_RETENTION=0: retention = %s, want 0 (keep for ever)", c.Retention)
	}
}
