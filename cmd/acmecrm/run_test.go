package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func runCLI(t *testing.T, getenv func(string) string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	// The servers' and children's output may arrive concurrently.
	var out, errOut syncBuffer
	err := run(context.Background(), args, getenv, &out, &errOut)
	code = exitCode(err, &errOut)
	return code, out.String(), errOut.String()
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	cases := [][]string{
		{},
		{"frobnicate"},
		{"--no-such-flag", "serve"},
		{"serve", "--no-such-flag"},
		{"serve", "--roles", "api,bogus"},
		{"serve", "extra-arg"},
		{"migrate"},
		{"migrate", "sideways"},
		{"dev", "extra"},
		{"dev", "--roles", "api,bogus"},
		{"stack"},
		{"simulate", "--no-such-flag"},
		{"simulate", "extra"},
		{"simulate", "--concurrency", "0"},
		{"simulate", "--duration", "0"},
		{"simulate", "--delete-ratio", "2"},
		{"simulate", "--rate", "-1"},
		{"simulate", "--secret", "whsec_!!"},
		{"simulate", "--emit", "-"},
		{"simulate", "--emit", "-", "--events", "5", "--delete-ratio", "-1"},
	}
	for _, args := range cases {
		code, _, stderr := runCLI(t, env(nil), args...)
		if code != 2 {
			t.Errorf("acmecrm %v: exit %d, want 2 (stderr %q)", args, code, stderr)
		}
		if !strings.Contains(stderr, "Usage") && !strings.Contains(stderr, "acmecrm:") {
			t.Errorf("acmecrm %v: no usage or error on stderr: %q", args, stderr)
		}
	}
}

func TestHelpAndVersion(t *testing.T) {
	t.Parallel()
	code, out, _ := runCLI(t, env(nil), "version")
	if code != 0 || !strings.HasPrefix(out, "acmecrm ") {
		t.Errorf("version: %d %q", code, out)
	}
	code, out, _ = runCLI(t, env(nil), "help")
	if code != 0 || !strings.Contains(out, "serve") || !strings.Contains(out, "Exit codes") {
		t.Errorf("help: %d %q", code, out)
	}
	code, _, stderr := runCLI(t, env(nil), "serve", "--help")
	if code != 0 || !strings.Contains(stderr, "--roles") {
		t.Errorf("serve --help: %d %q", code, stderr)
	}
	_, help, _ := runCLI(t, env(nil), "help")
	for _, cmd := range []string{"dlq", "users", "migrate"} {
		code, out, errOut := runCLI(t, env(nil), cmd, "--help")
		if code != 0 || !strings.Contains(out+errOut, "acmecrm "+cmd) {
			t.Errorf("%s --help: %d %q %q", cmd, code, out, errOut)
		}
		// The overview names every subcommand the command's usage lists
		// ("acmecrm users set-password …", "acmecrm migrate up|status").
		subs := regexp.MustCompile(`acmecrm `+cmd+` ([a-z|-]+)`).FindAllStringSubmatch(out+errOut, -1)
		if len(subs) == 0 {
			t.Errorf("%s --help lists no subcommands", cmd)
		}
		for _, m := range subs {
			for _, sub := range strings.Split(m[1], "|") {
				if !regexp.MustCompile(`(?m)^  ` + cmd + ` .*\b` + sub + `\b`).MatchString(strings.ReplaceAll(help, "\n            ", " ")) {
					t.Errorf("help does not name %s %s", cmd, sub)
				}
			}
		}
	}
	code, _, stderr = runCLI(t, env(nil), "simulate", "--help")
	if code != 0 || !strings.Contains(stderr, "-rate") || !strings.Contains(stderr, "-duplicate-ratio") {
		t.Errorf("simulate --help: %d %q", code, stderr)
	}
}

func TestInvalidConfigStopsStartup(t *testing.T) {
	t.Parallel()
	code, _, stderr := runCLI(t, env(map[string]string{"APP_ENV": "production", "PORT": "abc"}), "serve")
	if code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	if !strings.Contains(stderr, "PORT: ") || !strings.Contains(stderr, "JWT_SECRET: ") {
		t.Errorf("stderr = %q", stderr)
	}
}

func TestEnvFileIsLayeredUnderEnvironment(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "test.env")
	if err := os.WriteFile(path, []byte("PORT=4000\nLOG_LEVEL=debug\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv, err := withEnvFile(env(map[string]string{"PORT": "5000"}), path)
	if err != nil {
		t.Fatal(err)
	}
	if getenv("PORT") != "5000" || getenv("LOG_LEVEL") != "debug" {
		t.Errorf("PORT=%q LOG_LEVEL=%q", getenv("PORT"), getenv("LOG_LEVEL"))
	}
	if _, err := withEnvFile(env(nil), filepath.Join(t.TempDir(), "absent.env")); err != nil {
		t.Errorf("a missing env file must be fine: %v", err)
	}
}
