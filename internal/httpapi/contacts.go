package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/acmecrm/acmecrm"
	"github.com/acmecrm/acmecrm/internal/postgres"
	"github.com/acmecrm/acmecrm/internal/simulator"
	"github.com/acmecrm/acmecrm/internal/turns"
)

// contactsAPI serves SPEC §6.
type contactsAPI struct {
	store    *postgres.Store
	sim      *simulator.Simulator
	searches *turns.Turns
	logger   *slog.Logger
	now      func() time.Time
}

// changed runs the simulator's auto-trigger after a committed change. The
// change stands either way, so a failure to queue the webhook is logged,
// not answered.
func (c *contactsAPI) changed(r *http.Request, eventType string, ct acmecrm.Contact) {
	if err := c.sim.ContactChanged(r.Context(), eventType, ct); err != nil {
		c.logger.ErrorContext(r.Context(), "simulator auto-trigger", "contact_id", ct.ID, "err", err)
	}
}

func (c *contactsAPI) fail(w http.ResponseWriter, r *http.Request, err error) {
	writeError(w, r, c.logger, c.now, err)
}

func etag(version int64) string { return `"` + strconv.FormatInt(version, 10) + `"` }

// writeContact answers with one contact, its ETag and status.
func writeContact(w http.ResponseWriter, status int, ct acmecrm.Contact) {
	w.Header().Set("ETag", etag(ct.Version))
	encode(w, status, struct {
		Data acmecrm.Contact `json:"data"`
	}{ct})
}

// contactID reads and checks the {id} path value.
func contactID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if _, err := uuid.Parse(id); err != nil || len(id) != 36 {
		var p acmecrm.Problems
		p.Add("id", "must be a UUID")
		return "", p.Err("invalid contact id")
	}
	return strings.ToLower(id), nil
}

type contactPage struct {
	Data       []acmecrm.Contact `json:"data"`
	Pagination pagination        `json:"pagination"`
}

type pagination struct {
	Page        int  `json:"page"`
	Limit       int  `json:"limit"`
	TotalItems  int  `json:"totalItems"`
	TotalPages  int  `json:"totalPages"`
	HasNextPage bool `json:"hasNextPage"`
	HasPrevPage bool `json:"hasPrevPage"`
}

// Paging bounds.
const (
	defaultLimit = 10
	maxLimit     = 100
	maxPage      = 100000
)

// SearchTurns bounds the contact lists whose cost grows with the table
// (postgres.ContactQuery.Costly): searches, pages from row 10,000 on, and
// lists of deleted contacts sorted by a text column. A search of one or two
// characters, which the trigram index cannot serve, reads every contact
// (0.2–0.27 s of one core at 1,200,000), so without a bound eight of them
// in a loop held the receiver's p50 at 29 ms instead of 1 ms. At most n run
// at once (0: half the cores, at least one), each on one core of the
// database (the list runs Serial: without parallel workers), and each
// user's one at a time, so that one user's flood of them makes that user
// wait, not everyone. A list waits at most wait for its turn, then gets 503
// SERVICE_UNAVAILABLE, or 429 TOO_MANY_REQUESTS when it waited behind the
// same user's (both with Retry-After).
func SearchTurns(n int, wait time.Duration) *turns.Turns {
	if n <= 0 {
		n = runtime.GOMAXPROCS(0) / 2
	}
	return turns.New(n, wait, errSearchesBusy).CallerBusy(errOwnSearchesBusy)
}

var (
	errSearchesBusy = &acmecrm.Error{Kind: acmecrm.KindUnavailable, Code: "SERVICE_UNAVAILABLE",
		Message: "too many searches at once; retry in a moment"}
	errOwnSearchesBusy = &acmecrm.Error{Kind: acmecrm.KindRateLimited, Code: "TOO_MANY_REQUESTS",
		Message: "too many of your searches at once: they run one at a time; retry when the others have ended"}
)

func (c *contactsAPI) list() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		var p acmecrm.Problems
		intParam := func(name string, def, min, max int) int {
			s := q.Get(name)
			if s == "" {
				return def
			}
			n, err := strconv.Atoi(s)
			if err != nil || n < min || n > max {
				p.Add(name, "must be a whole number from %d to %d", min, max)
				return def
			}
			return n
		}
		cq := postgres.ContactQuery{
			Page:   intParam("page", 1, 1, maxPage),
			Limit:  intParam("limit", defaultLimit, 1, maxLimit),
			Sort:   q.Get("sort"),
			Search: q.Get("search"),
			Source: q.Get("source"),
			Status: q.Get("status"),
		}
		if cq.Sort == "" {
			cq.Sort = "createdAt"
		}
		if _, ok := postgres.SortColumns[cq.Sort]; !ok {
			p.Add("sort", "must be one of firstName, lastName, email, company, createdAt, updatedAt")
		}
		switch strings.ToLower(q.Get("order")) {
		case "", "desc":
			cq.Desc = true
		case "asc":
		default:
			p.Add("order", "must be asc or desc")
		}
		if len([]rune(cq.Search)) > 200 {
			p.Add("search", "must be at most 200 characters")
		}
		if len(cq.Source) > 50 {
			p.Add("source", "must be at most 50 characters")
		}
		switch cq.Status {
		case "", acmecrm.StatusActive, acmecrm.StatusInactive, acmecrm.StatusLead, acmecrm.StatusDeleted:
		default:
			p.Add("status", "must be one of active, inactive, lead, deleted")
		}
		switch q.Get("includeDeleted") {
		case "", "false":
		case "true":
			cq.IncludeDeleted = true
		default:
			p.Add("includeDeleted", "must be true or false")
		}
		if err := p.Err("invalid query parameters"); err != nil {
			c.fail(w, r, err)
			return
		}
		if cq.Costly() {
			release, err := c.searches.TakeFor(r.Context(), identity(r.Context()).UserID)
			if err != nil {
				c.fail(w, r, err)
				return
			}
			defer release()
			cq.Serial = true // a turn is one core of the database
		}
		contacts, total, err := c.store.ListContacts(r.Context(), cq)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		pages := (total + cq.Limit - 1) / cq.Limit
		encode(w, http.StatusOK, contactPage{
			Data: contacts,
			Pagination: pagination{
				Page: cq.Page, Limit: cq.Limit, TotalItems: total, TotalPages: pages,
				HasNextPage: cq.Page < pages, HasPrevPage: cq.Page > 1,
			},
		})
	})
}

// answerContact writes ct, or 304 when the caller already has this version.
func answerContact(w http.ResponseWriter, r *http.Request, ct acmecrm.Contact) {
	if inm := r.Header.Get("If-None-Match"); inm != "" && (inm == etag(ct.Version) || inm == "W/"+etag(ct.Version)) {
		w.Header().Set("ETag", etag(ct.Version))
		w.WriteHeader(http.StatusNotModified)
		return
	}
	writeContact(w, http.StatusOK, ct)
}

func (c *contactsAPI) get() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := contactID(r)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		ct, err := c.store.Contact(r.Context(), id)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		answerContact(w, r, ct)
	})
}

func (c *contactsAPI) getBySource() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ct, err := c.store.ContactBySource(r.Context(), r.PathValue("source"), r.PathValue("sourceId"))
		if err != nil {
			c.fail(w, r, err)
			return
		}
		answerContact(w, r, ct)
	})
}

// createInput is the body of POST /api/contacts.
type createInput struct {
	acmecrm.ContactFields
	Source   string `json:"source"`
	SourceID string `json:"sourceId"`
}

func (c *contactsAPI) create() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in createInput
		if err := decode(r, &in); err != nil {
			c.fail(w, r, err)
			return
		}
		in.Normalize()
		var p acmecrm.Problems
		in.Validate(&p, "", false)
		acmecrm.ValidateSource(&p, in.Source, in.SourceID)
		if err := p.Err("invalid contact"); err != nil {
			c.fail(w, r, err)
			return
		}
		ct, err := c.store.CreateContact(r.Context(), in.Source, in.SourceID, in.ContactFields)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		c.changed(r, acmecrm.EventContactCreated, ct)
		w.Header().Set("Location", "/api/contacts/"+ct.ID)
		writeContact(w, http.StatusCreated, ct)
	})
}

func (c *contactsAPI) upsertAcme() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in acmecrm.AcmeContact
		if err := decode(r, &in); err != nil {
			c.fail(w, r, err)
			return
		}
		var p acmecrm.Problems
		if in.ContactID == "" || len(in.ContactID) > 255 {
			p.Add("contact_id", "is required (at most 255 characters)")
		}
		in.ValidateAudit(&p)
		fields := acmecrm.FromAcme(in)
		var fp acmecrm.Problems
		fields.Validate(&fp, "", false)
		for _, e := range fp {
			p = append(p, acmecrm.FieldError{Path: acmecrm.AcmePath(e.Path), Message: e.Message})
		}
		if err := p.Err("invalid AcmeCRM contact"); err != nil {
			c.fail(w, r, err)
			return
		}
		ct, created, err := c.store.UpsertAcmeContact(r.Context(), in.ContactID, fields)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		status, eventType := http.StatusOK, acmecrm.EventContactUpdated
		if created {
			eventType = acmecrm.EventContactCreated
			status = http.StatusCreated
			w.Header().Set("Location", "/api/contacts/"+ct.ID)
		}
		c.changed(r, eventType, ct)
		writeContact(w, status, ct)
	})
}

// precondition is the version a write is conditional on, and whether it
// came from If-Match (412 when stale) or the body (409).
type precondition struct {
	version   int64
	fromMatch bool
}

// readPrecondition combines If-Match and a body version. Neither is 428.
func readPrecondition(r *http.Request, bodyVersion *int64, required bool) (*precondition, error) {
	if h := r.Header.Get("If-Match"); h != "" {
		v, err := strconv.ParseInt(strings.Trim(h, `"`), 10, 64)
		if err != nil || !strings.HasPrefix(h, `"`) || !strings.HasSuffix(h, `"`) || len(h) < 3 {
			return nil, acmecrm.Errorf(acmecrm.KindInvalid, "INVALID_INPUT", `If-Match must be a version ETag such as "3"`)
		}
		if bodyVersion != nil && *bodyVersion != v {
			return nil, acmecrm.Errorf(acmecrm.KindInvalid, "INVALID_INPUT", "If-Match and the body's version disagree")
		}
		return &precondition{version: v, fromMatch: true}, nil
	}
	if bodyVersion != nil {
		return &precondition{version: *bodyVersion}, nil
	}
	if required {
		return nil, acmecrm.Errorf(acmecrm.KindPreconditionRequired, "PRECONDITION_REQUIRED",
			`send If-Match: "<version>" or a "version" field to update a contact`)
	}
	return nil, nil
}

// conflictError turns a stale version into 409 VERSION_CONFLICT, or 412
// when the version came from If-Match.
func conflictError(err error, pre *precondition) error {
	vc, ok := isVersionConflict(err)
	if !ok || pre == nil {
		return err
	}
	kind := acmecrm.KindConflict
	if pre.fromMatch {
		kind = acmecrm.KindPreconditionFailed
	}
	return &acmecrm.Error{Kind: kind, Code: "VERSION_CONFLICT",
		Message: fmt.Sprintf("the contact has changed: current version %d, provided %d", vc.Current, vc.Provided),
		Details: map[string]any{"currentVersion": vc.Current, "providedVersion": vc.Provided}}
}

// replaceInput is the body of PUT: the editable fields, the version, and the
// read-only fields a client may echo back from a GET (ignored).
type replaceInput struct {
	acmecrm.ContactFields
	Version   *int64          `json:"version"`
	ID        json.RawMessage `json:"id"`
	Source    json.RawMessage `json:"source"`
	SourceID  json.RawMessage `json:"sourceId"`
	CreatedAt json.RawMessage `json:"createdAt"`
	UpdatedAt json.RawMessage `json:"updatedAt"`
	DeletedAt json.RawMessage `json:"deletedAt"`
}

func (c *contactsAPI) replace() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := contactID(r)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		var in replaceInput
		if err := decode(r, &in); err != nil {
			c.fail(w, r, err)
			return
		}
		pre, err := readPrecondition(r, in.Version, true)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		in.Normalize()
		var p acmecrm.Problems
		in.Validate(&p, "", false)
		if err := p.Err("invalid contact"); err != nil {
			c.fail(w, r, err)
			return
		}
		ct, changed, err := c.store.ReplaceContact(r.Context(), id, pre.version, in.ContactFields)
		if err != nil {
			c.fail(w, r, conflictError(err, pre))
			return
		}
		if changed {
			c.changed(r, acmecrm.EventContactUpdated, ct)
		}
		writeContact(w, http.StatusOK, ct)
	})
}

// readOnlyFields may not appear in a merge patch.
var readOnlyFields = []string{"id", "source", "sourceId", "createdAt", "updatedAt", "deletedAt"}

func (c *contactsAPI) patch() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := contactID(r)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		body, err := readJSONBody(r)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		var patch map[string]any
		if err := unmarshalStrict(body, &patch); err != nil {
			c.fail(w, r, err)
			return
		}
		if patch == nil {
			c.fail(w, r, acmecrm.Errorf(acmecrm.KindInvalid, "INVALID_INPUT", "a merge patch must be a JSON object"))
			return
		}
		var p acmecrm.Problems
		for _, f := range readOnlyFields {
			if _, ok := patch[f]; ok {
				p.Add(f, "is read-only")
			}
		}
		var bodyVersion *int64
		if v, ok := patch["version"]; ok {
			n, err := strconv.ParseInt(fmt.Sprint(v), 10, 64)
			if err != nil {
				p.Add("version", "must be a whole number")
			}
			bodyVersion = &n
			delete(patch, "version")
		}
		if err := p.Err("invalid merge patch"); err != nil {
			c.fail(w, r, err)
			return
		}
		pre, err := readPrecondition(r, bodyVersion, true)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		current, err := c.store.Contact(r.Context(), id)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		if current.DeletedAt != nil {
			c.fail(w, r, acmecrm.Errorf(acmecrm.KindNotFound, "RESOURCE_NOT_FOUND", "contact not found"))
			return
		}
		fields, err := mergePatch(current.ContactFields, patch)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		fields.Normalize()
		fields.Validate(&p, "", false)
		if err := p.Err("invalid contact after applying the patch"); err != nil {
			c.fail(w, r, err)
			return
		}
		// The write is conditional on the version the caller saw; if the
		// contact moved on since we read it, the update matches nothing.
		ct, changed, err := c.store.ReplaceContact(r.Context(), id, pre.version, fields)
		if err != nil {
			c.fail(w, r, conflictError(err, pre))
			return
		}
		if changed {
			c.changed(r, acmecrm.EventContactUpdated, ct)
		}
		writeContact(w, http.StatusOK, ct)
	})
}

// mergePatch applies an RFC 7386 JSON merge patch to the editable fields.
func mergePatch(f acmecrm.ContactFields, patch map[string]any) (acmecrm.ContactFields, error) {
	b, err := json.Marshal(f)
	if err != nil {
		return f, err
	}
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // custom-field numbers keep their digits (DECISIONS #72)
	if err := dec.Decode(&doc); err != nil {
		return f, err
	}
	merged, err := json.Marshal(mergeValue(doc, patch))
	if err != nil {
		return f, err
	}
	var out acmecrm.ContactFields
	if err := unmarshalStrict(merged, &out); err != nil {
		return f, err
	}
	return out, nil
}

func mergeValue(target any, patch any) any {
	pm, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	tm, ok := target.(map[string]any)
	if !ok {
		tm = map[string]any{}
	}
	for k, v := range pm {
		if v == nil {
			delete(tm, k)
			continue
		}
		tm[k] = mergeValue(tm[k], v)
	}
	return tm
}

func (c *contactsAPI) delete() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := contactID(r)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		pre, err := readPrecondition(r, nil, false)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		var version *int64
		if pre != nil {
			version = &pre.version
		}
		ct, err := c.store.DeleteContact(r.Context(), id, version)
		if err != nil {
			c.fail(w, r, conflictError(err, pre))
			return
		}
		c.changed(r, acmecrm.EventContactDeleted, ct)
		w.Header().Set("ETag", etag(ct.Version))
		encode(w, http.StatusOK, map[string]string{"message": "Contact deleted successfully", "id": ct.ID})
	})
}
