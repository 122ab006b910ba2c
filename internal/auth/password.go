package auth

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// bcryptCost is bcrypt's work factor: about 50 ms per check on this class
// of machine.
const bcryptCost = 10

// MinPasswordLength is the shortest password accepted for new users.
const MinPasswordLength = 8

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
	if len(password) > 72 {
		return "", errors.New("password must be at most 72 bytes (bcrypt's limit)")
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
