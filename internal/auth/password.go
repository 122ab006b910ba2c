package auth

import (
	"errors"
	"fmt"
	"sync"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"github.com/acmecrm/acmecrm"
)

// bcryptCost is bcrypt's work factor: about 50 ms per check on this class
// of machine.
const bcryptCost = 10

// MinPasswordLength is the shortest password accepted for new users, and
// MaxPasswordBytes the longest (bcrypt reads no further).
const (
	MinPasswordLength = 8
	MaxPasswordBytes  = 72
)

// CheckUsername refuses a user name that is empty, longer than 255 bytes
// (the column's limit), not UTF-8, or holding white space, control or
// other invisible characters, with which two names could look the same.
func CheckUsername(name string) error {
	switch {
	case name == "" || len(name) > 255:
		return errors.New("user name must be 1–255 bytes")
	case !utf8.ValidString(name) || acmecrm.HasInvisible(name):
		return errors.New("user name must be printable UTF-8 without white space")
	}
	return nil
}

// HashPassword hashes a password for storage.
func HashPassword(password string) (string, error) {
	return HashPasswordCost(password, bcryptCost)
}

// HashPasswordCost is HashPassword with an explicit bcrypt cost (tests use
// bcrypt.MinCost to stay fast; CheckPassword reads the cost from the hash).
func HashPasswordCost(password string, cost int) (string, error) {
	if len(password) < MinPasswordLength {
		return "", fmt.Errorf("password must be at least %d characters", MinPasswordLength)
	}
	if len(password) > MaxPasswordBytes {
		return "", fmt.Errorf("password must be at most %d bytes (bcrypt's limit)", MaxPasswordBytes)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	return string(h), err
}

// dummyHash is checked when the user does not exist, so that a wrong
// username takes as long as a wrong password. Made on first use.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("not-a-real-password"), bcryptCost)
	return h
})

// CheckPassword reports whether password matches hash. An empty hash (no
// such user) still spends the time of a real check.
func CheckPassword(hash, password string) bool {
	if hash == "" {
		_ = bcrypt.CompareHashAndPassword(dummyHash(), []byte(password))
		return false
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
}
