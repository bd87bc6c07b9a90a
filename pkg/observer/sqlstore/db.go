package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite"
)

// connectTimeout bounds the first contact with the server, so that a wrong
// host fails before the command starts rather than hanging.
const connectTimeout = 5 * time.Second

// open connects to the database of c and pings it.
func open(ctx context.Context, c *Config) (*sql.DB, error) {
	var db *sql.DB
	switch c.dialect {
	case dialectSQLite:
		if fi, err := os.Stat(filepath.Dir(c.Database)); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("cannot open %s: the directory %s does not exist", Redact(c.raw), filepath.Dir(c.Database))
		}
		q := url.Values{}
		q.Add("_pragma", "busy_timeout(10000)")
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "foreign_keys(1)")
		// Taking the write lock at BEGIN avoids the deadlock of two
		// readers upgrading at once, which busy_timeout cannot resolve.
		q.Set("_txlock", "immediate")
		var err error
		db, err = sql.Open("sqlite", "file:"+c.Database+"?"+q.Encode())
		if err != nil {
			return nil, c.scrub(fmt.Errorf("open %s: %w", c.Database, err))
		}
	case dialectPostgres:
		u := url.URL{Scheme: "postgres", Host: c.Host, Path: "/" + c.Database}
		if c.Port != 0 {
			u.Host = net.JoinHostPort(c.Host, strconv.Itoa(c.Port))
		} else if strings.Contains(c.Host, ":") {
			u.Host = "[" + c.Host + "]"
		}
		if c.User != "" || c.Password != "" {
			if c.Password != "" {
				u.User = url.UserPassword(c.User, c.Password)
			} else {
				u.User = url.User(c.User)
			}
		}
		u.RawQuery = c.Query.Encode()
		pc, err := pgx.ParseConfig(u.String())
		if err != nil {
			return nil, c.scrub(fmt.Errorf("%w %q: %w", errURL, Redact(c.raw), err))
		}
		if pc.ConnectTimeout == 0 || pc.ConnectTimeout > connectTimeout {
			pc.ConnectTimeout = connectTimeout
		}
		db = stdlib.OpenDB(*pc)
	case dialectMySQL:
		mc := mysql.NewConfig()
		mc.User, mc.Passwd, mc.DBName = c.User, c.Password, c.Database
		mc.Net = "tcp"
		host := c.Host
		if host == "" {
			host = "localhost"
		}
		port := c.Port
		if port == 0 {
			port = 3306
		}
		mc.Addr = net.JoinHostPort(host, strconv.Itoa(port))
		if s := c.Query.Get("unix_socket"); s != "" {
			mc.Net, mc.Addr = "unix", s
		}
		mc.ParseTime = true
		mc.Loc = time.UTC
		mc.Timeout = connectTimeout
		if t := c.Query.Get("connect_timeout"); t != "" {
			n, err := strconv.Atoi(t)
			if err != nil || n <= 0 {
				return nil, urlError(c.raw, "connect_timeout %q is not a positive number of seconds", t)
			}
			mc.Timeout = time.Duration(n) * time.Second
		}
		if t := c.Query.Get("tls"); t != "" {
			mc.TLSConfig = t
		} else if c.Query.Get("ssl") == "true" {
			mc.TLSConfig = "true"
		}
		mc.Collation = "utf8mb4_general_ci"
		// Ask the server for its max_allowed_packet: with the driver's
		// default of 64 MiB a larger statement than the server takes
		// resets the connection instead of failing as too large.
		mc.MaxAllowedPacket = 0
		conn, err := mysql.NewConnector(mc)
		if err != nil {
			return nil, c.scrub(fmt.Errorf("%w %q: %w", errURL, Redact(c.raw), err))
		}
		db = sql.OpenDB(conn)
	}
	pctx, cancel := context.WithTimeout(ctx, connectTimeout+time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		hint := ""
		if c.dialect != dialectSQLite {
			hint = " (check that the server runs and the host, port, user, password and database of the URL)"
		}
		return nil, fmt.Errorf("%w%s", c.scrub(fmt.Errorf("cannot connect: %w", err)), hint)
	}
	return db, nil
}

// scrubbed hides the password in the message of a driver error while
// keeping the error itself for errors.Is and errors.As.
type scrubbed struct {
	msg string
	err error
}

func (s *scrubbed) Error() string { return s.msg }
func (s *scrubbed) Unwrap() error { return s.err }

// scrub makes sure no driver message can leak the password, whatever the
// driver chose to print, and makes the message one line (pgx lists each
// address it tried on a line of its own).
func (c *Config) scrub(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := msg
	if c.Password != "" {
		clean = strings.ReplaceAll(clean, c.Password, "***")
		clean = strings.ReplaceAll(clean, url.QueryEscape(c.Password), "***")
	}
	if strings.ContainsAny(clean, "\r\n") {
		var parts []string
		seen := map[string]bool{}
		for _, l := range strings.FieldsFunc(clean, func(r rune) bool { return r == '\n' || r == '\r' }) {
			l = strings.TrimSpace(l)
			if l != "" && !seen[l] {
				seen[l] = true
				parts = append(parts, l)
			}
		}
		clean = strings.Join(parts, " ")
	}
	if clean == msg {
		return err
	}
	return &scrubbed{msg: clean, err: err}
}

// rebind turns "?" placeholders into "$n" for PostgreSQL. Our statements
// never contain a literal "?".
func (d dialect) rebind(q string) string {
	if d != dialectPostgres {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// releaseLock releases a MySQL named lock held by conn, also when ctx is
// already done (the lock would outlive a failed call until the connection
// closes), within a short bound of its own.
func releaseLock(ctx context.Context, conn *sql.Conn, name string) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	conn.ExecContext(rctx, "SELECT RELEASE_LOCK(?)", name) //nolint:errcheck // released on disconnect anyway
}

// onConflict is the clause that turns an INSERT into an upsert on the
// unique key: the row with the same key gets the update columns of the new
// row, or is left as it is when update is empty. A write sent again after
// an error then does no harm.
func (d dialect) onConflict(key, update []string) string {
	var b strings.Builder
	if d == dialectMySQL {
		b.WriteString(" ON DUPLICATE KEY UPDATE ")
		if len(update) == 0 {
			b.WriteString(key[0] + " = " + key[0])
		}
		for i, c := range update {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(c + " = VALUES(" + c + ")")
		}
		return b.String()
	}
	b.WriteString(" ON CONFLICT (" + strings.Join(key, ", ") + ") DO ")
	if len(update) == 0 {
		b.WriteString("NOTHING")
		return b.String()
	}
	b.WriteString("UPDATE SET ")
	for i, c := range update {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(c + " = excluded." + c)
	}
	return b.String()
}

// nullEq is the null-safe equality of the dialect, for get-or-create
// lookups on columns that may be NULL.
func (d dialect) nullEq() string {
	switch d {
	case dialectPostgres:
		return "IS NOT DISTINCT FROM"
	case dialectMySQL:
		return "<=>"
	}
	return "IS"
}

// sqliteTime is the text SQLAlchemy writes into SQLite DATETIME columns.
const sqliteTime = "2006-01-02 15:04:05.000000"

// tm converts a time for a DATETIME column; the zero time is NULL.
func (d dialect) tm(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	if d == dialectSQLite {
		return t.Format(sqliteTime)
	}
	return t
}

// float gives what a FLOAT column of the dialect can hold: NaN and the
// infinities only where the database stores them.
func (o *Observer) float(v float64) any {
	switch {
	case math.IsNaN(v):
		if o.d == dialectPostgres {
			return v
		}
		return nil
	case math.IsInf(v, 0):
		if o.d == dialectMySQL {
			return nil
		}
		return v
	}
	return v
}

// resultFloat is the value of run.result for a result: the number when it
// is one, NULL otherwise.
func (o *Observer) resultFloat(r any) any {
	var f float64
	switch x := r.(type) {
	case float64:
		f = x
	case float32:
		f = float64(x)
	case int:
		f = float64(x)
	case int64:
		f = float64(x)
	case int32:
		f = float64(x)
	case uint64:
		f = float64(x)
	case uint:
		f = float64(x)
	case interface{ Float64() (float64, error) }: // json.Number
		v, err := x.Float64()
		if err != nil {
			return nil
		}
		f = v
	default:
		return nil
	}
	return o.float(f)
}

// dbTime scans a DATETIME column of any dialect into UTC.
type dbTime struct{ T time.Time }

func (t *dbTime) Scan(v any) error {
	switch x := v.(type) {
	case nil:
		t.T = time.Time{}
	case time.Time:
		// Naive columns come back in the driver's location; they were
		// written as UTC wall clock, so reinterpret, never convert.
		t.T = time.Date(x.Year(), x.Month(), x.Day(), x.Hour(), x.Minute(), x.Second(), x.Nanosecond(), time.UTC)
	case string:
		return t.parse(x)
	case []byte:
		return t.parse(string(x))
	default:
		return fmt.Errorf("cannot read a time from %T", v)
	}
	return nil
}

func (t *dbTime) parse(s string) error {
	for _, f := range []string{"2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999-07:00", time.RFC3339Nano, "2006-01-02"} {
		if p, err := time.Parse(f, s); err == nil {
			t.T = p.UTC()
			return nil
		}
	}
	return fmt.Errorf("cannot read the time %q", s)
}

// isUnique tells whether err is a unique-constraint violation.
func isUnique(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "23505"
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == 1062
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		// SQLITE_CONSTRAINT_UNIQUE, SQLITE_CONSTRAINT_PRIMARYKEY
		return se.Code() == 2067 || se.Code() == 1555
	}
	return false
}
