package postgres

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/acmecrm/acmecrm"
)

// uniqueViolation is PostgreSQL's SQLSTATE for a duplicate key.
const uniqueViolation = "23505"

func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == uniqueViolation
}

func notFound(what string) error {
	return acmecrm.Errorf(acmecrm.KindNotFound, "RESOURCE_NOT_FOUND", "%s not found", what)
}

// translate turns driver errors that mean "the database is unavailable"
// into KindUnavailable (503 with Retry-After upstream), leaving others as
// they are. Context errors stay context errors.
func translate(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var e *acmecrm.Error
	if errors.As(err, &e) {
		return err
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Class 08 connection exceptions, 53 insufficient resources, 57P
		// operator intervention (shutdown), 25006 a read-only server (a
		// standby, reached after a failover): the database, not the request.
		if c := pgErr.Code; len(c) >= 2 && (c[:2] == "08" || c[:2] == "53" || c[:3] == "57P" || c == "25006") {
			return &acmecrm.Error{Kind: acmecrm.KindUnavailable, Code: "SERVICE_UNAVAILABLE", Message: "the database is unavailable", Err: err}
		}
		return errors.Join(errors.New(op), err)
	}
	if pgconn.SafeToRetry(err) || isConnError(err) {
		return &acmecrm.Error{Kind: acmecrm.KindUnavailable, Code: "SERVICE_UNAVAILABLE", Message: "the database is unavailable", Err: err}
	}
	return errors.Join(errors.New(op), err)
}

// isConnError reports errors from reaching the server (it is down, or the
// connection broke) as opposed to errors of the statement itself.
func isConnError(err error) bool {
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		strings.Contains(err.Error(), "conn closed")
}
