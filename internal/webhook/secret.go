package webhook

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// Secret is one shared signing secret. ID names it in events and metrics
// ("current", "previous-1", …) without revealing it.
type Secret struct {
	ID  string
	Key []byte
}

// ParseSecret turns a configured secret into its key: a Standard Webhooks
// secret ("whsec_" + base64) is its decoded bytes, anything else is its own
// bytes. The same key serves both schemes.
func ParseSecret(id, s string) (Secret, error) {
	if b64, ok := strings.CutPrefix(s, "whsec_"); ok {
		key, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(key) == 0 {
			return Secret{}, fmt.Errorf("secret %s: whsec_ secrets must be base64", id)
		}
		return Secret{ID: id, Key: key}, nil
	}
	if s == "" {
		return Secret{}, fmt.Errorf("secret %s is empty", id)
	}
	return Secret{ID: id, Key: []byte(s)}, nil
}

// ParseSecrets reads the current secret and the comma-separated previous
// ones (accepted during a rotation), in that order.
func ParseSecrets(current, previous string) ([]Secret, error) {
	s, err := ParseSecret("current", current)
	if err != nil {
		return nil, err
	}
	out := []Secret{s}
	n := 0
	for _, p := range strings.Split(previous, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		n++
		s, err := ParseSecret("previous-"+strconv.Itoa(n), p)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}
