// Package postgres owns everything the service keeps in PostgreSQL: the
// connection pool, the embedded schema migrations, and (as the service
// grows) every SQL statement. Transactions never leave this package.
package postgres
