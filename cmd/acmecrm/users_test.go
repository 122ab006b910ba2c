package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func login(t *testing.T, base, user, password string) (int, string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"username": user, "password": password})
	resp, err := http.Post(base+"/api/auth/login", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Token string }
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out.Token
}

func authedStatus(t *testing.T, base, token, path string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", base+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// The first admin comes from the environment; `acmecrm users` manages the
// rest against the same deployment, and role changes revoke tokens.
func TestAdminBootstrapAndUsersCommand(t *testing.T) {
	t.Parallel()
	vars := testEnv(t)
	vars["ADMIN_USERNAME"], vars["ADMIN_PASSWORD"] = "root@example.com", "a-strong-password"
	s := startService(t, vars, "serve")

	code, adminTok := login(t, s.base, "root@example.com", "a-strong-password")
	if code != 200 || authedStatus(t, s.base, adminTok, "/api/admin/users") != 200 {
		t.Fatalf("bootstrap admin cannot log in or use admin routes: %d", code)
	}

	// The users command needs the database only: an operator's shell with
	// DATABASE_URL alone (the production defaults for everything else,
	// which refuse the development secrets) is enough.
	dbOnly := map[string]string{"DATABASE_URL": vars["DATABASE_URL"]}
	if code, _, stderr := runCLI(t, env(dbOnly), "users", "create", "--username", "ann@example.com", "--password", "ann-password"); code != 0 {
		t.Fatalf("users create: %d %s", code, stderr)
	}
	for _, bad := range []string{"ctl\x01@example.com", "two words", strings.Repeat("u", 256)} {
		if code, _, stderr := runCLI(t, env(dbOnly), "users", "create", "--username", bad, "--password", "ann-password"); code != 2 || !strings.Contains(stderr, "user name") {
			t.Errorf("users create %q: %d %s", bad, code, stderr)
		}
	}
	code, annTok := login(t, s.base, "ann@example.com", "ann-password")
	if code != 200 {
		t.Fatalf("new user login: %d", code)
	}
	if st := authedStatus(t, s.base, annTok, "/api/admin/users"); st != 403 {
		t.Errorf("a user on an admin route: %d", st)
	}
	if code, out, _ := runCLI(t, env(vars), "users", "list"); code != 0 || !strings.Contains(out, "ann@example.com") || !strings.Contains(out, "root@example.com") {
		t.Errorf("users list: %d %q", code, out)
	}
	if code, _, stderr := runCLI(t, env(vars), "users", "set-role", "ann@example.com", "admin"); code != 0 {
		t.Fatalf("set-role: %d %s", code, stderr)
	}
	if st := authedStatus(t, s.base, annTok, "/api/contacts"); st != 401 {
		t.Errorf("token with the old role still accepted: %d", st)
	}
	_, annTok = login(t, s.base, "ann@example.com", "ann-password")
	if st := authedStatus(t, s.base, annTok, "/api/admin/users"); st != 200 {
		t.Errorf("promoted user on an admin route: %d", st)
	}
	// A new password (read from standard input, given after the name): the
	// old password and every token of the user end.
	var out, errOut syncBuffer
	err := cmdUsers(context.Background(), []string{"set-password", "ann@example.com", "--password-stdin"}, env(vars), strings.NewReader("ann-new-password\n"), &out, &errOut)
	if err != nil || !strings.Contains(out.String(), "tokens are revoked") {
		t.Fatalf("set-password: %v %q %q", err, out.String(), errOut.String())
	}
	if st := authedStatus(t, s.base, annTok, "/api/contacts"); st != 401 {
		t.Errorf("token from before the new password still accepted: %d", st)
	}
	if code, _ := login(t, s.base, "ann@example.com", "ann-password"); code != 401 {
		t.Errorf("the old password still logs in: %d", code)
	}
	if code, annTok = login(t, s.base, "ann@example.com", "ann-new-password"); code != 200 || authedStatus(t, s.base, annTok, "/api/admin/users") != 200 {
		t.Errorf("the new password: login %d", code)
	}
	// The flags may also come first.
	if code, _, stderr := runCLI(t, env(vars), "users", "set-password", "--password", "ann-newer-password", "ann@example.com"); code != 0 {
		t.Errorf("set-password with the flag first: %d %s", code, stderr)
	}
	if code, _ := login(t, s.base, "ann@example.com", "ann-newer-password"); code != 200 {
		t.Errorf("the newer password: login %d", code)
	}
	if code, _, stderr := runCLI(t, env(vars), "users", "delete", "ann@example.com"); code != 0 {
		t.Fatalf("delete: %d %s", code, stderr)
	}
	if st := authedStatus(t, s.base, annTok, "/api/contacts"); st != 401 {
		t.Errorf("deleted user's token still accepted: %d", st)
	}
	if code, _ := login(t, s.base, "ann@example.com", "ann-password"); code != 401 {
		t.Errorf("deleted user can log in: %d", code)
	}

	// Mistakes are usage errors or clear failures.
	for _, args := range [][]string{
		{"users"}, {"users", "create"}, {"users", "create", "--username", "x@example.com"},
		{"users", "create", "--username", "x@example.com", "--password", "pw12345678", "--role", "god"},
		{"users", "set-role", "ann@example.com"}, {"users", "bogus"},
		{"users", "set-password", "ann@example.com"}, {"users", "set-password", "--password", "long-enough-1"},
		{"users", "set-password", "ann@example.com", "--password", "short"},
	} {
		if code, _, _ := runCLI(t, env(vars), args...); code != 2 {
			t.Errorf("acmecrm %v: exit %d, want 2", args, code)
		}
	}
	// The name given as an argument: say where it goes (the flags after it
	// were never read).
	if code, _, stderr := runCLI(t, env(vars), "users", "create", "bob@example.com", "--role", "admin"); code != 2 || !strings.Contains(stderr, `unexpected argument "bob@example.com"`) || !strings.Contains(stderr, "--username") {
		t.Errorf("users create NAME: exit %d %q", code, stderr)
	}
	if code, _, stderr := runCLI(t, env(vars), "users", "create", "--username", "root@example.com", "--password", "whatever-123"); code != 1 || !strings.Contains(stderr, "already exists") {
		t.Errorf("duplicate user: %d %q", code, stderr)
	}
	if code, _, stderr := runCLI(t, env(vars), "users", "delete", "nobody@example.com"); code != 1 || !strings.Contains(stderr, "not found") {
		t.Errorf("delete unknown: %d %q", code, stderr)
	}
	if code, _, stderr := runCLI(t, env(vars), "users", "set-password", "nobody@example.com", "--password", "long-enough-1"); code != 1 || !strings.Contains(stderr, "not found") {
		t.Errorf("set-password of an unknown user: %d %q", code, stderr)
	}
}

func TestDemoAdminPasswordOnlyInDevelopment(t *testing.T) {
	t.Parallel()
	e := validEnv()
	e["ADMIN_USERNAME"], e["ADMIN_PASSWORD"] = demoAdminUsername, demoAdminPassword
	if _, err := loadConfig(env(e)); err == nil || !strings.Contains(err.Error(), "ADMIN_PASSWORD") {
		t.Errorf("demo password in production: %v", err)
	}
	e["APP_ENV"] = "development"
	if _, err := loadConfig(env(e)); err != nil {
		t.Errorf("demo password in development: %v", err)
	}
	e["ADMIN_PASSWORD"] = ""
	if _, err := loadConfig(env(e)); err == nil {
		t.Error("ADMIN_USERNAME without ADMIN_PASSWORD accepted")
	}
	e["ADMIN_PASSWORD"], e["RATE_LIMIT_API"] = "long-enough-pw", "lots"
	if _, err := loadConfig(env(e)); err == nil || !strings.Contains(err.Error(), "RATE_LIMIT_API") {
		t.Errorf("bad rate limit accepted: %v", err)
	}
}
