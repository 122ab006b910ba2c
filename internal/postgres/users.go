package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/acmecrm/acmecrm"
)

// User is an account of the REST API.
type User struct {
	ID           string    `json:"id"`
	Username     string    `json:"username"`
	Role         string    `json:"role"`
	PasswordHash string    `json:"-"`
	CreatedAt    time.Time `json:"createdAt"`
}

const userCols = `id, username, role, password_hash, created_at`

func scanUser(row pgx.Row) (User, error) {
	var u User
	err := row.Scan(&u.ID, &u.Username, &u.Role, &u.PasswordHash, &u.CreatedAt)
	return u, err
}

// CreateUser adds a user; an existing username is a conflict.
func (s *Store) CreateUser(ctx context.Context, username, passwordHash, role string) (User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx,
		`INSERT INTO users (username, password_hash, role) VALUES ($1, $2, $3) RETURNING `+userCols,
		username, passwordHash, role))
	if isUniqueViolation(err) {
		return User{}, acmecrm.Errorf(acmecrm.KindConflict, "RESOURCE_ALREADY_EXISTS", "user %q already exists", username)
	}
	return u, translate("create user", err)
}

// EnsureUser creates the user unless one with that name exists, and
// reports whether it created it. It never changes an existing user.
func (s *Store) EnsureUser(ctx context.Context, username, passwordHash, role string) (bool, error) {
	tag, err := s.pool.Exec(ctx,
		`INSERT INTO users (username, password_hash, role) VALUES ($1, $2, $3) ON CONFLICT (username) DO NOTHING`,
		username, passwordHash, role)
	if err != nil {
		return false, translate("ensure user", err)
	}
	return tag.RowsAffected() == 1, nil
}

// UserByUsername finds a user by name.
func (s *Store) UserByUsername(ctx context.Context, username string) (User, error) {
	return s.oneUser(ctx, "user by name", `SELECT `+userCols+` FROM users WHERE username = $1`, username)
}

// UserByID finds a user by id.
func (s *Store) UserByID(ctx context.Context, id string) (User, error) {
	return s.oneUser(ctx, "user by id", `SELECT `+userCols+` FROM users WHERE id = $1`, id)
}

// Users lists every user by name.
func (s *Store) Users(ctx context.Context) ([]User, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+userCols+` FROM users ORDER BY username`)
	if err != nil {
		return nil, translate("list users", err)
	}
	users, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (User, error) { return scanUser(r) })
	return users, translate("list users", err)
}

// SetUserRole changes a user's role.
func (s *Store) SetUserRole(ctx context.Context, username, role string) (User, error) {
	return s.oneUser(ctx, "set role", `UPDATE users SET role = $2, updated_at = now() WHERE username = $1 RETURNING `+userCols, username, role)
}

// SetUserPassword replaces a user's password hash.
func (s *Store) SetUserPassword(ctx context.Context, username, passwordHash string) (User, error) {
	return s.oneUser(ctx, "set password", `UPDATE users SET password_hash = $2, updated_at = now() WHERE username = $1 RETURNING `+userCols, username, passwordHash)
}

// DeleteUser removes a user.
func (s *Store) DeleteUser(ctx context.Context, username string) (User, error) {
	return s.oneUser(ctx, "delete user", `DELETE FROM users WHERE username = $1 RETURNING `+userCols, username)
}

// oneUser runs a statement that returns one user; no row is 404.
func (s *Store) oneUser(ctx context.Context, op, sql string, args ...any) (User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, sql, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, notFound("user")
	}
	return u, translate(op, err)
}
