package postgres

import (
	"context"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/acmecrm/acmecrm"
)

// SortColumns maps the API's sort keys to columns. Only these names ever
// reach the SQL text; every value is a bound parameter.
var SortColumns = map[string]string{
	"firstName": "first_name",
	"lastName":  "last_name",
	"email":     "email",
	"company":   "company",
	"createdAt": "created_at",
	"updatedAt": "updated_at",
}

// ContactQuery selects a page of contacts. Sort must be a key of
// SortColumns; the caller validates it.
type ContactQuery struct {
	Page, Limit    int
	Sort           string
	Desc           bool
	Search         string
	Source         string
	Status         string
	IncludeDeleted bool
	// Serial runs the list without PostgreSQL's parallel workers, on one
	// core of the database: the lists that take a search turn, so that
	// SEARCH_CONCURRENCY bounds the cores they take (DECISIONS #108).
	Serial bool
}

// DeepOffset is where a page of the contact list starts to cost like a
// search: PostgreSQL reads every row before it.
const DeepOffset = 10000

// Costly reports whether the list's cost grows with the table, so that it
// should take a search turn and run Serial: a search (one of one or two
// characters reads every contact), a page from DeepOffset on, and a list
// that includes deleted contacts sorted by a name, the email or the
// company (their indexes hold live contacts only, migration 00013).
func (q ContactQuery) Costly() bool {
	textSort := q.Sort != "createdAt" && q.Sort != "updatedAt"
	withDeleted := q.IncludeDeleted || q.Status == acmecrm.StatusDeleted
	return q.Search != "" || (q.Page-1)*q.Limit >= DeepOffset || (withDeleted && textSort)
}

// and adds c to the WHERE clause cond.
func and(cond, c string) string {
	if cond == "" {
		return " WHERE " + c
	}
	return cond + " AND " + c
}

// escapeLike makes s match literally inside a LIKE pattern.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// fewMatches is how many times the rows a page needs (offset and limit)
// the matches may number for the page to be taken by sorting every match
// rather than by walking the sort index: with fewer matches than that the
// walk expects to read more than a quarter of the table, at random.
const fewMatches = 4

// ListContacts returns one page and the total number of matches. Totals
// are cached for up to a second (see countCache); those of the lists
// without a search are kept by triggers, so that taking one is cheap.
func (s *Store) ListContacts(ctx context.Context, q ContactQuery) ([]acmecrm.Contact, int, error) {
	col, ok := SortColumns[q.Sort]
	if !ok {
		return nil, 0, acmecrm.Errorf(acmecrm.KindInvalid, "INVALID_INPUT", "unknown sort field %q", q.Sort)
	}
	var where, kept []string // conditions on contacts, and on contact_counts
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if q.Search != "" {
		// search_text is name, email and company folded by
		// contact_search_fold (migration 00009), under a trigram index.
		where = append(where, `search_text LIKE contact_search_fold(`+arg("%"+escapeLike(q.Search)+"%")+`) ESCAPE '\'`)
	}
	if q.Source != "" {
		a := arg(q.Source)
		where, kept = append(where, "source = "+a), append(kept, "source = "+a)
	}
	if q.Status != "" {
		a := arg(q.Status)
		where, kept = append(where, "status = "+a), append(kept, "status = "+a)
	}
	if !q.IncludeDeleted && q.Status != acmecrm.StatusDeleted {
		where, kept = append(where, "deleted_at IS NULL"), append(kept, "NOT deleted")
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	dir := "ASC"
	if q.Desc {
		dir = "DESC"
	}
	// A search's count and the page run unnamed (QueryExecModeExec), so
	// PostgreSQL plans them for this search's values every time. As cached
	// prepared statements they were switched to a generic plan after five
	// runs, and a generic plan cannot know whether the pattern is rare,
	// common or too short for the trigram index: on 1,000,000 contacts it
	// made a common pattern's page 642 ms instead of 0.05 ms (DECISIONS
	// #102).
	//
	// A search counts its matches; the totals of the other lists are kept
	// by triggers (migration 00012), and reading one is a sum over a few
	// rows instead of a count of every contact (DECISIONS #107). Either is
	// remembered for a moment (countCache).
	//
	// Both are taken apart for live and deleted contacts, which the time
	// sorts' indexes hold apart (below).
	countSQL, countArgs := `SELECT count(*) FILTER (WHERE deleted_at IS NULL), count(*) FILTER (WHERE deleted_at IS NOT NULL) FROM contacts`+cond,
		append([]any{pgx.QueryExecModeExec}, args...)
	if q.Search == "" {
		countSQL, countArgs = `SELECT coalesce(sum(n) FILTER (WHERE NOT deleted), 0)::bigint, coalesce(sum(n) FILTER (WHERE deleted), 0)::bigint
			FROM contact_counts`, args
		if len(kept) > 0 {
			countSQL += ` WHERE ` + strings.Join(kept, " AND ")
		}
	}
	var db interface {
		QueryRow(context.Context, string, ...any) pgx.Row
		Query(context.Context, string, ...any) (pgx.Rows, error)
	} = s.pool
	if q.Serial {
		// SET LOCAL lasts until the transaction ends, which the pooled
		// connection is returned with; begun in the same round trip.
		tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{BeginQuery: "BEGIN READ ONLY; SET LOCAL max_parallel_workers_per_gather = 0"})
		if err != nil {
			return nil, 0, translate("list contacts", err)
		}
		// Read only: ending it by a rollback is the same as a commit.
		defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
		db = tx
	}
	key := countKey(cond, args)
	split, cached, gen := s.counts.get(key)
	if !cached {
		if err := db.QueryRow(ctx, countSQL, countArgs...).Scan(&split.live, &split.deleted); err != nil {
			return nil, 0, translate("count contacts", err)
		}
		s.counts.put(key, gen, split)
	}
	total := split.live + split.deleted
	offset := (q.Page - 1) * q.Limit
	if !cached && total <= offset {
		// The count, just taken, says the page is empty: a search that
		// matches nothing costs one scan, not two (DECISIONS #104).
		return []acmecrm.Contact{}, total, nil
	}
	from := `contacts` + cond
	order := ` ORDER BY ` + col + ` ` + dir + `, id ` + dir
	switch {
	case total <= fewMatches*(offset+q.Limit):
		// Few rows match. PostgreSQL's estimate of how many do can be far
		// off (a pattern too short for the trigram index is guessed at
		// 0.007 %), and walking the sort index until the page is full
		// would then read most of the table in index order: 0.85 s for a
		// two-letter search that matches nothing on 1,000,000 contacts.
		// OFFSET 0 keeps the filter in a subquery that PostgreSQL plans on
		// its own (the trigram index, or a parallel scan), and the few
		// matches are sorted: 0.19 s for that search.
		from = `(SELECT * FROM contacts` + cond + ` OFFSET 0) c`
	case (col == "created_at" || col == "updated_at") && (q.IncludeDeleted || q.Status == acmecrm.StatusDeleted):
		// The time sorts' indexes hold live and deleted contacts apart
		// (migration 00016), so that a list of live contacts never walks
		// tombstones, which the CRM deletes in bulk. A list that may show
		// both walks the half its totals say has matches, or both halves,
		// each to the end of the page, and merges them.
		live, deleted := `contacts`+and(cond, "deleted_at IS NULL"), `contacts`+and(cond, "deleted_at IS NOT NULL")
		switch {
		case split.deleted == 0:
			from = live
		case split.live == 0:
			from = deleted
		default:
			n := arg(offset + q.Limit)
			from = `((SELECT * FROM ` + live + order + ` LIMIT ` + n + `) UNION ALL (SELECT * FROM ` + deleted + order + ` LIMIT ` + n + `)) c`
		}
	}
	page := `SELECT ` + contactCols + ` FROM ` + from + order +
		` LIMIT ` + arg(q.Limit) + ` OFFSET ` + arg(offset)
	rows, err := db.Query(ctx, page, append([]any{pgx.QueryExecModeExec}, args...)...)
	if err != nil {
		return nil, 0, translate("list contacts", err)
	}
	contacts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (acmecrm.Contact, error) { return scanContact(r) })
	if err != nil {
		return nil, 0, translate("list contacts", err)
	}
	if contacts == nil {
		contacts = []acmecrm.Contact{}
	}
	return contacts, total, nil
}
